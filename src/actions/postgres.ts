import { z } from 'zod';
import type { Config } from '../config/schema.js';
import { ageOf, oldestTables, snapshotAge, statsOf, type Relation } from '../systems/postgres/catalog.js';
import { describeHolder, heldAtVacuum, horizonHolders, type HorizonHolder } from '../systems/postgres/horizon.js';
import { runVacuums, type VacuumRunOutput } from './postgres-vacuum-progress.js';
import { hiddenSessionsNote, runStatements, sqlPlan, type SqlOutput, type SqlPayload, where, withClient } from './postgres-session.js';
import { findTable, inScope, resolveScope, resolveTable, scopeParams, screenScope } from './postgres-scope.js';
import { analyzeStatement, qualified, vacuumStatement } from '../systems/postgres/sql.js';
import { count, flag, identifier, progressSeconds } from './params.js';
import { once, type Action, type ActionContext, type CheckResult } from './contract.js';
import { onFirstUse } from '../lazy-schema.js';

const vacuumParams = onFirstUse(() => z.strictObject({
  target: identifier,
  database: identifier,
  table: identifier.optional(),
  analyze: flag(true),
  full: flag(false),
  // VACUUM (FREEZE): without a table, the oldest tables by age(relfrozenxid) over minXidAge, not dead tuples.
  freeze: flag(false),
  minXidAge: count().optional(),
  // Overrides the target's tables.minDeadTuples: the run proceeds only above it.
  minDeadTuples: count().optional(),
  /** How often a running VACUUM's progress is read, logged and journalled. */
  progressSeconds: progressSeconds(),
  ...scopeParams,
}));
type VacuumParams = z.infer<typeof vacuumParams>;

interface DeadTable { schema: string; name: string; oid: number; deadTuples: number; vacuumCount: number; filenode: number | null; xidAge: number; frozenXid: string | null; lastVacuum: number | null }

// What check() observed, read back in verify() (the engine hands it over as plain JSON).
const observedTables = onFirstUse(() => z.object({
  tables: z.array(z.object({ oid: z.number(), schema: z.string(), name: z.string(), deadTuples: z.number(), vacuumCount: z.number(), filenode: z.number().nullable(), xidAge: z.number(), frozenXid: z.string().nullable(), lastVacuum: z.number().nullable() })),
}));

/** The number a table must be over: its xid age for a freeze, else its dead tuples. */
function threshold(params: VacuumParams, config: Readonly<Config>): number {
  if (params.freeze) return params.minXidAge ?? 0;
  return params.minDeadTuples ?? config.targets.postgres.find((entry) => entry.name === params.target)?.tables.minDeadTuples ?? 0;
}

type Measured = Pick<DeadTable, 'xidAge' | 'deadTuples'>;

// Built once: zod compiles an object schema's parser on its first use.
const deadRelations = onFirstUse(() => z.array(z.object({ oid: z.number(), schema: z.string(), name: z.string() })));
const analyzedBefore = onFirstUse(() => z.object({ table: z.object({ analyzeCount: z.number() }) }));

function measure(params: VacuumParams, table: Measured): number {
  return params.freeze ? table.xidAge : table.deadTuples;
}

function describe(params: VacuumParams, table: Measured): string {
  return params.freeze ? `xid age ${table.xidAge}` : `${table.deadTuples} dead tuples`;
}

function maxTables(params: VacuumParams, config: Readonly<Config>): number {
  return config.targets.postgres.find((entry) => entry.name === params.target)?.tables.limit ?? 500;
}

/** The tables this vacuum is about, with their stats now: the named one, or every one over the threshold. */
async function vacuumTables(params: VacuumParams, context: ActionContext): Promise<{ tables: DeadTable[]; over: DeadTable[]; holder: HorizonHolder | undefined }> {
  const limit = threshold(params, context.config);
  return withClient(context, params.target, params.database, async (client) => {
    let relations: Relation[];
    if (params.table !== undefined) {
      relations = [await findTable(client, params, params.table, context)];
    } else if (params.freeze) {
      relations = (await oldestTables(client, limit)).filter(inScope(context.config, params)).slice(0, maxTables(params, context.config));
    } else {
      const result = await client.query(
        'select relid::int as oid, schemaname as schema, relname as name from pg_stat_user_tables where n_dead_tup > $1 order by n_dead_tup desc, relid',
        [limit]);
      relations = deadRelations.parse(result.rows)
        .filter(inScope(context.config, params)).slice(0, maxTables(params, context.config));
    }
    // A dry run's statistics and horizon come from reads it shares with the dry runs asking at the same moment.
    const shared = context.connections.catalogReads(params.target, params.database);
    const tables: DeadTable[] = [];
    if (shared) {
      tables.push(...await Promise.all(relations.map(async (relation) => ({ ...relation, ...(await shared.statsOf(relation.oid)) }))));
    } else {
      for (const relation of relations) tables.push({ ...relation, ...(await statsOf(client, relation.oid)) });
    }
    const over = tables.filter((table) => measure(params, table) > limit);
    const holders = over.length === 0 ? [] : await (shared ? shared.horizonHolders() : horizonHolders(client));
    // The oldest holder that kept every listed table's last vacuum from its dead tuples.
    if (!params.freeze) return { tables, over, holder: holders.find((candidate) => over.every((table) => heldAtVacuum(candidate, table.lastVacuum))) };
    const [holder] = holders;
    // A freeze advances relfrozenxid only up to the horizon: a table no older than it (this
    // session's own snapshot, or what holds the horizon) cannot be frozen further.
    const frozenUpTo = Math.max(await snapshotAge(client), holder?.age ?? 0);
    return { tables, over: over.filter((table) => table.xidAge > frozenUpTo), holder };
  });
}

export const vacuum: Action<VacuumParams, SqlPayload, VacuumRunOutput> = {
  name: 'postgres.vacuum',
  description: 'VACUUM (ANALYZE) one table, or every table over the dead-tuple threshold (minDeadTuples, default the target\'s tables.minDeadTuples); freeze: true runs VACUUM (FREEZE) on the oldest tables by age(relfrozenxid) first.',
  riskClass: 'safe; full: true is disruptive (VACUUM FULL holds an ACCESS EXCLUSIVE lock while it rewrites the table)',
  params: vacuumParams,
  risk: (params) => (params.full ? 'disruptive' : 'safe'),
  screen: (params, config, trigger) => screenScope(config, trigger, params, { table: params.table }),
  async resolve(params, context) {
    if (params.table === undefined) {
      await resolveScope(params, context);
      return params;
    }
    return { ...params, table: qualified(await resolveTable(params, params.table, context)) };
  },
  // After resolve, `table` is the catalog's quoted name: every spelling of a table shares one lock and one cooldown.
  lock: (params) => ({ kind: 'postgres', target: params.target, database: params.database, key: `vacuum:${params.table ?? '*'}` }),
  async check(params, context): Promise<CheckResult> {
    const { over, tables, holder } = await once(context, 'vacuum:tables', () => vacuumTables(params, context));
    const observed = { threshold: threshold(params, context.config), tables, ...(holder ? { horizonHeldBy: holder } : {}) };
    // Dead tuples that died after the horizon's holder took its snapshot stay put: a run would
    // only rescan the table. The reason names the holder, so whoever reads the journal can end it.
    if (holder && (!params.freeze || over.length === 0)) {
      const what = params.freeze ? 'no table can be frozen further' : 'its last vacuum left the dead tuples that died after it, and another cannot remove them';
      return { proceed: false, reason: `the vacuum horizon is held by ${describeHolder(holder)}: ${what}`, observed };
    }
    if (over.length === 0) {
      const [named] = tables;
      const what = params.table !== undefined && named ? `${named.schema}.${named.name} has ${describe(params, named)}` : `no table has ${params.freeze ? 'an xid age' : 'dead tuples'}`;
      return { proceed: false, reason: `${what}, not over the threshold ${observed.threshold}`, observed };
    }
    return { proceed: true, reason: `${over.map((table) => `${table.schema}.${table.name}: ${describe(params, table)}`).join(', ')}`, observed };
  },
  async plan(params, context) {
    // The candidates the check just listed: one reading of the catalog per run.
    const { over } = await once(context, 'vacuum:tables', () => vacuumTables(params, context));
    return sqlPlan(over.map((table) => vacuumStatement(table, { full: params.full, freeze: params.freeze, analyze: params.analyze })));
  },
  run: (params, payload, context) => runVacuums(context, params, payload.statements, params.table ?? `tables in ${where(params)}`, params.progressSeconds),
  async verify(params, before, output, context) {
    const previous = observedTables.parse(before.observed ?? { tables: [] }).tables.filter((table) => measure(params, table) > threshold(params, context.config));
    // One query at a time: a pg client queues concurrent queries, and pg 9 will refuse them.
    const { after, hidden } = await withClient(context, params.target, params.database, async (client) => {
      const read = [];
      for (const table of previous) {
        read.push({ table, stats: await statsOf(client, table.oid), ageNow: table.frozenXid === null ? 0 : await ageOf(client, table.frozenXid) });
      }
      return { after: read, hidden: await hiddenSessionsNote(client) };
    });
    const problems: string[] = [];
    for (const { table, stats, ageNow } of after) {
      const name = qualified(table);
      // VACUUM FULL rewrites the table into a new file; a plain VACUUM counts itself in vacuum_count.
      const ran = params.full ? stats.filenode !== table.filenode : stats.vacuumCount > table.vacuumCount;
      if (!ran) problems.push(`${name}: no sign the vacuum ran (${params.full ? 'same relation file' : `vacuum_count ${stats.vacuumCount}, was ${table.vacuumCount}`})`);
      // A rewrite leaves no dead tuple behind, but only ANALYZE refreshes the count after VACUUM FULL.
      // Freezing sets relfrozenxid to the horizon: the age falls unless something holds the horizon back.
      // Both ages read now: new transactions since the check age the table and its old relfrozenxid alike.
      else if (params.freeze && stats.xidAge >= ageNow) {
        problems.push(`${name}: xid age did not fall (${ageNow} for its relfrozenxid before the run, ${stats.xidAge} now); something holds the vacuum horizon back`);
      } else if (!params.freeze && !params.full && stats.deadTuples >= table.deadTuples && stats.deadTuples > 0) {
        // The check skips such a run, naming the session, when the role can see it.
        problems.push(`${name}: dead tuples did not fall (${table.deadTuples} before, ${stats.deadTuples} after); an old open transaction may be holding them${hidden}`);
      }
    }
    const observed = { tables: after.map(({ table, stats }) => ({ schema: table.schema, name: table.name, ...stats })) };
    // What PostgreSQL said while it skipped the work (a role that does not own the table).
    const said = output.detail.warnings?.length ? `; PostgreSQL warned: ${output.detail.warnings.join('; ')}` : '';
    if (problems.length > 0) return { ok: false, detail: `${problems.join('; ')}${said}`, observed };
    const [what, value] = params.freeze ? ['xid age', (t: Measured) => t.xidAge] as const : ['dead tuples', (t: Measured) => t.deadTuples] as const;
    return { ok: true, detail: after.map(({ table, stats }) => `${table.schema}.${table.name}: ${what} ${value(table)} -> ${value(stats)}`).join(', '), observed };
  },
};

const analyzeParams = onFirstUse(() => z.strictObject({ target: identifier, database: identifier, table: identifier, ...scopeParams }));
type AnalyzeParams = z.infer<typeof analyzeParams>;

async function analyzeTarget(params: AnalyzeParams, context: ActionContext): Promise<DeadTable & { analyzeCount: number }> {
  return withClient(context, params.target, params.database, async (client) => {
    const relation = await findTable(client, params, params.table, context);
    return { ...relation, ...(await statsOf(client, relation.oid)) };
  });
}

export const analyze: Action<AnalyzeParams, SqlPayload, SqlOutput> = {
  name: 'postgres.analyze',
  description: 'ANALYZE one table, refreshing the planner statistics.',
  riskClass: 'safe',
  params: analyzeParams,
  risk: () => 'safe',
  screen: (params, config, trigger) => screenScope(config, trigger, params, { table: params.table }),
  async resolve(params, context) {
    return { ...params, table: qualified(await resolveTable(params, params.table, context)) };
  },
  lock: (params) => ({ kind: 'postgres', target: params.target, database: params.database, key: `analyze:${params.table}` }),
  async check(params, context) {
    const table = await analyzeTarget(params, context);
    return { proceed: true, reason: `analyze_count is ${table.analyzeCount}`, observed: { table } };
  },
  async plan(params, context) {
    return sqlPlan([analyzeStatement(await analyzeTarget(params, context))]);
  },
  run: (params, payload, context) => runStatements(context, params, payload, params.table),
  async verify(params, before, _output, context) {
    const previous = analyzedBefore.parse(before.observed);
    const now = await analyzeTarget(params, context);
    const ok = now.analyzeCount > previous.table.analyzeCount;
    return { ok, detail: `analyze_count ${previous.table.analyzeCount} -> ${now.analyzeCount}`, observed: { analyzeCount: now.analyzeCount } };
  },
};
