import type pg from 'pg';
import { z } from 'zod';
import { checkTarget, findRelation, runPlan, sqlSteps, where, withClient } from './postgres-catalog.js';
import { reindexStatement, type ReindexScope } from './postgres-sql.js';
import { flag, identifier } from './params.js';
import type { Action, ActionContext } from './types.js';

const reindexParams = z.strictObject({
  target: identifier,
  database: identifier,
  table: identifier.optional(),
  index: identifier.optional(),
  concurrently: flag(true),
}).refine((params) => params.table === undefined || params.index === undefined, 'give table or index, not both');
type ReindexParams = z.infer<typeof reindexParams>;

const indexRow = z.object({ schema: z.string(), name: z.string(), filenode: z.coerce.number().nullable(), valid: z.boolean() });
type IndexState = z.infer<typeof indexRow>;

async function scopeOf(client: pg.Client, params: ReindexParams): Promise<ReindexScope> {
  if (params.index !== undefined) return { kind: 'index', name: await findRelation(client, params.index, 'index', where(params)) };
  if (params.table !== undefined) return { kind: 'table', name: await findRelation(client, params.table, 'table', where(params)) };
  const result = await client.query('select current_database() as database');
  return { kind: 'database', database: z.object({ database: z.string() }).parse(result.rows[0]).database };
}

// The indexes a reindex rebuilds (by name: REINDEX CONCURRENTLY swaps in a new index under the old
// name), plus any invalid "_ccnew" leftovers a cancelled concurrent reindex may have left.
async function indexesOf(client: pg.Client, params: ReindexParams): Promise<{ scope: ReindexScope; indexes: IndexState[]; leftovers: number }> {
  const scope = await scopeOf(client, params);
  const select = `select n.nspname as schema, c.relname as name, pg_relation_filenode(c.oid) as filenode, i.indisvalid as valid
                    from pg_index i join pg_class c on c.oid = i.indexrelid join pg_namespace n on n.oid = c.relnamespace`;
  let rows: unknown[] = [];
  if (scope.kind === 'index') rows = (await client.query(`${select} where n.nspname = $1 and c.relname = $2`, [scope.name.schema, scope.name.name])).rows;
  if (scope.kind === 'table') rows = (await client.query(`${select} join pg_class t on t.oid = i.indrelid join pg_namespace tn on tn.oid = t.relnamespace where tn.nspname = $1 and t.relname = $2 order by 2`, [scope.name.schema, scope.name.name])).rows;
  const leftovers = await client.query("select count(*)::int as count from pg_index i join pg_class c on c.oid = i.indexrelid where not i.indisvalid and c.relname like '%\\_ccnew%'");
  return { scope, indexes: z.array(indexRow).parse(rows), leftovers: z.object({ count: z.number() }).parse(leftovers.rows[0]).count };
}

function describe(params: ReindexParams): string {
  return params.index ?? params.table ?? `database ${params.database}`;
}

async function indexes(params: ReindexParams, context: ActionContext) {
  return withClient(context, params.target, params.database, (client) => indexesOf(client, params));
}

export const reindex: Action<ReindexParams> = {
  name: 'postgres.reindex',
  description: 'REINDEX an index, every index of a table, or the whole database; CONCURRENTLY unless concurrently: false.',
  riskClass: 'safe when concurrently (the default); disruptive otherwise (plain REINDEX blocks writes to the table)',
  params: reindexParams,
  risk: (params) => (params.concurrently ? 'safe' : 'disruptive'),
  async resolve(params, context) {
    checkTarget(context.config, params.target, params.database);
    await indexes(params, context);
    return params;
  },
  lock: (params) => ({
    kind: 'postgres', target: params.target, database: params.database,
    key: params.index !== undefined ? `reindex:index:${params.index}` : params.table !== undefined ? `reindex:table:${params.table}` : 'reindex:database',
  }),
  async check(params, context) {
    const state = await indexes(params, context);
    if (state.scope.kind === 'table' && state.indexes.length === 0) return { proceed: false, reason: `${describe(params)} has no indexes`, observed: state };
    return { proceed: true, reason: `rebuilding ${state.scope.kind === 'database' ? 'every index' : `${state.indexes.length} index(es)`} of ${describe(params)}`, observed: state };
  },
  async plan(params, context) {
    const state = await indexes(params, context);
    return sqlSteps([reindexStatement(state.scope, params.concurrently)]);
  },
  run: (params, plan, context) => runPlan(context, params, plan, describe(params)),
  async verify(params, before, _output, context) {
    const previous = z.object({ indexes: z.array(indexRow), leftovers: z.number() }).parse(before.observed);
    const now = await indexes(params, context);
    const problems: string[] = [];
    for (const index of previous.indexes) {
      const rebuilt = now.indexes.find((candidate) => candidate.schema === index.schema && candidate.name === index.name);
      if (!rebuilt) problems.push(`${index.schema}.${index.name} is gone`);
      else if (!rebuilt.valid) problems.push(`${index.schema}.${index.name} is invalid`);
      else if (rebuilt.filenode === index.filenode) problems.push(`${index.schema}.${index.name} was not rebuilt (same file)`);
    }
    if (now.leftovers > previous.leftovers) problems.push(`${now.leftovers - previous.leftovers} invalid _ccnew index(es) left behind; drop them`);
    const observed = { indexes: now.indexes, leftovers: now.leftovers };
    if (problems.length > 0) return { ok: false, detail: problems.join('; '), observed };
    return { ok: true, detail: `${previous.indexes.length > 0 ? `${previous.indexes.length} index(es) rebuilt` : 'database reindexed'}, all valid`, observed };
  },
};
