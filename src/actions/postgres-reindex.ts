import type pg from 'pg';
import { z } from 'zod';
import { findRelation, tableOfIndex, type Relation } from '../systems/postgres/catalog.js';
import { runStatements, sqlPlan, type SqlOutput, type SqlPayload, where, withClient } from './postgres-session.js';
import { inScope, requireInScope, resolveScope, resolveTable, scopeParams, screenScope } from './postgres-scope.js';
import { qualified, reindexStatement, type ReindexTarget } from '../systems/postgres/sql.js';
import { flag, identifier } from './params.js';
import type { Action, ActionContext } from './contract.js';
import { onFirstUse } from '../lazy-schema.js';

const reindexParams = onFirstUse(() => z.strictObject({
  target: identifier,
  database: identifier,
  table: identifier.optional(),
  index: identifier.optional(),
  concurrently: flag(true),
  ...scopeParams,
}).refine((params) => params.table === undefined || params.index === undefined, 'give table or index, not both'));
type ReindexParams = z.infer<typeof reindexParams>;

const indexRow = onFirstUse(() => z.object({ schema: z.string(), name: z.string(), filenode: z.coerce.number().nullable(), valid: z.boolean() }));
type IndexState = z.infer<typeof indexRow>;

const tableRow = onFirstUse(() => z.object({ oid: z.number(), schema: z.string(), name: z.string() }));

/** A named index, a named table, or (neither named) every table in scope that has an index. */
type Scope = { kind: 'index'; index: Relation } | { kind: 'table' | 'database'; tables: Relation[] };

// The database's user tables with indexes, biggest indexes first. Partitions are listed on their
// own (REINDEX TABLE of a partitioned table would rebuild them a second time); the filter decides.
const TABLES_WITH_INDEXES = `
select c.oid::int as oid, n.nspname as schema, c.relname as name
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where c.relkind in ('r', 'm') and exists (select 1 from pg_index i where i.indrelid = c.oid)
 order by pg_indexes_size(c.oid) desc, 2, 3`;

async function scopeOf(client: pg.Client, params: ReindexParams, context: ActionContext): Promise<Scope> {
  if (params.index !== undefined) return { kind: 'index', index: await findRelation(client, params.index, 'index', where(params)) };
  if (params.table !== undefined) return { kind: 'table', tables: [await findRelation(client, params.table, 'table', where(params))] };
  const limit = context.config.targets.postgres.find((entry) => entry.name === params.target)?.tables.limit ?? 500;
  const tables = z.array(tableRow).parse((await client.query(TABLES_WITH_INDEXES)).rows).filter(inScope(context.config, params));
  return { kind: 'database', tables: tables.slice(0, limit) };
}

// The indexes a reindex rebuilds (by name: REINDEX CONCURRENTLY swaps in a new index under the old
// name), plus any invalid "_ccnew" leftovers a cancelled concurrent reindex may have left.
async function indexesOf(client: pg.Client, params: ReindexParams, context: ActionContext): Promise<{ scope: Scope; indexes: IndexState[]; leftovers: number }> {
  const scope = await scopeOf(client, params, context);
  const select = `select n.nspname as schema, c.relname as name, pg_relation_filenode(c.oid) as filenode, i.indisvalid as valid
                    from pg_index i join pg_class c on c.oid = i.indexrelid join pg_namespace n on n.oid = c.relnamespace`;
  const rows = scope.kind === 'index'
    ? (await client.query(`${select} where n.nspname = $1 and c.relname = $2`, [scope.index.schema, scope.index.name])).rows
    : (await client.query(`${select} where i.indrelid = any($1::oid[]) order by 1, 2`, [scope.tables.map((table) => table.oid)])).rows;
  const leftovers = await client.query("select count(*)::int as count from pg_index i join pg_class c on c.oid = i.indexrelid where not i.indisvalid and c.relname like '%\\_ccnew%'");
  return { scope, indexes: z.array(indexRow).parse(rows), leftovers: z.object({ count: z.number() }).parse(leftovers.rows[0]).count };
}

function describe(params: ReindexParams): string {
  return params.index ?? params.table ?? `database ${params.database}`;
}

function targetsOf(scope: Scope): ReindexTarget[] {
  return scope.kind === 'index' ? [{ kind: 'index', name: scope.index }] : scope.tables.map((name) => ({ kind: 'table', name }));
}

async function indexes(params: ReindexParams, context: ActionContext) {
  return withClient(context, params.target, params.database, (client) => indexesOf(client, params, context));
}

export const reindex: Action<ReindexParams, SqlPayload, SqlOutput> = {
  name: 'postgres.reindex',
  description: 'REINDEX an index, every index of a table, or every index of the tables the target watches in a database; CONCURRENTLY unless concurrently: false.',
  riskClass: 'safe when concurrently (the default); disruptive otherwise (plain REINDEX blocks writes to the table)',
  params: reindexParams,
  risk: (params) => (params.concurrently ? 'safe' : 'disruptive'),
  screen: (params, config, trigger) => screenScope(config, trigger, params, { table: params.table, index: params.index }),
  async resolve(params, context) {
    if (params.table !== undefined) return { ...params, table: qualified(await resolveTable(params, params.table, context)) };
    await resolveScope(params, context);
    if (params.index === undefined) return params;
    const text = params.index;
    const index = await withClient(context, params.target, params.database, async (client) => {
      const found = await findRelation(client, text, 'index', where(params));
      // An index is in scope when its table is (a system catalog's index lives in the catalog's schema).
      requireInScope(context.config, params, await tableOfIndex(client, found));
      return found;
    });
    return { ...params, index: qualified(index) };
  },
  // After resolve, names are the catalog's quoted ones: every spelling shares one lock and one cooldown.
  lock: (params) => ({
    kind: 'postgres', target: params.target, database: params.database,
    key: params.index !== undefined ? `reindex:index:${params.index}` : params.table !== undefined ? `reindex:table:${params.table}` : 'reindex:database',
  }),
  async check(params, context) {
    const state = await indexes(params, context);
    if (state.scope.kind !== 'index' && state.indexes.length === 0) {
      const what = state.scope.kind === 'table' ? `${describe(params)} has no indexes` : `no table in scope in database ${params.database} has an index`;
      return { proceed: false, reason: what, observed: state };
    }
    const tables = state.scope.kind === 'database' ? ` in ${state.scope.tables.length} table(s)` : '';
    return { proceed: true, reason: `rebuilding ${state.indexes.length} index(es)${tables} of ${describe(params)}`, observed: state };
  },
  async plan(params, context) {
    const state = await indexes(params, context);
    return sqlPlan(targetsOf(state.scope).map((target) => reindexStatement(target, params.concurrently)));
  },
  run: (params, payload, context) => runStatements(context, params, payload, describe(params)),
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
    return { ok: true, detail: `${previous.indexes.length} index(es) rebuilt, all valid`, observed };
  },
};
