import type pg from 'pg';
import { z } from 'zod';
import type { RetentionPolicy } from '../config/schema.js';
import { parseDurationSeconds } from '../config/duration.js';
import { isSystemSchema } from '../systems/postgres/watched.js';
import { columnsOf, findRelation, type Relation } from '../systems/postgres/catalog.js';
import { explainLockTimeout, withClient } from './postgres-session.js';
import { checkTarget } from './postgres-scope.js';
import { qualified, retentionSql, sameTable, type QualifiedName, type RetentionSql } from '../systems/postgres/sql.js';
import { identifier } from './params.js';
import { once, PartialWork, type Action, type ActionContext, type PlanStep } from './contract.js';
import { ValidationError, withPrivilegeNeeded } from '../errors.js';
import { onFirstUse } from '../lazy-schema.js';

// Name the policy, or the table (as a rule templated from an alert would): either way, only a
// table declared in remediation.retention can be touched.
const retentionParams = onFirstUse(() => z.strictObject({
  policy: identifier.optional(),
  target: identifier.optional(),
  database: identifier.optional(),
  table: identifier.optional(),
}).refine((params) => params.policy !== undefined || params.table !== undefined, 'give policy (a remediation.retention name) or table'));
type RetentionParams = z.infer<typeof retentionParams>;

/**
 * A policy named together with a target, database or table that are not its own. The policy
 * decides what is deleted; the others were ignored and journalled as given, so the run's record
 * named one table while the DELETE ran on another: refused instead, naming the policy's own.
 */
function contradiction(policy: RetentionPolicy, params: RetentionParams): string | null {
  const differing = [
    params.target !== undefined && params.target !== policy.target ? `target ${JSON.stringify(params.target)}` : null,
    params.database !== undefined && params.database !== policy.database ? `database ${JSON.stringify(params.database)}` : null,
    params.table !== undefined && !sameTable(policy.table, params.table) ? `table ${JSON.stringify(params.table)}` : null,
  ].filter((given) => given !== null);
  if (differing.length === 0) return null;
  return `retention policy ${JSON.stringify(policy.name)} acts on target ${JSON.stringify(policy.target)}, database ${JSON.stringify(policy.database)}, table ${JSON.stringify(policy.table)}, `
    + `but the params give ${differing.join(', ')}; leave them out or give the policy's own`;
}

/** The declared policy these params name; refuses anything else. */
export function findPolicy(policies: readonly RetentionPolicy[], params: RetentionParams): RetentionPolicy {
  const declared = policies.map((policy) => policy.name).join(', ') || 'none';
  if (params.policy !== undefined) {
    const policy = policies.find((candidate) => candidate.name === params.policy);
    if (!policy) throw new ValidationError(`no retention policy named ${JSON.stringify(params.policy)} (declared: ${declared})`);
    const reason = contradiction(policy, params);
    if (reason !== null) throw new ValidationError(reason);
    return policy;
  }
  const policy = policies.find((candidate) => sameTable(candidate.table, params.table ?? '')
    && (params.target === undefined || candidate.target === params.target)
    && (params.database === undefined || candidate.database === params.database));
  if (!policy) throw new ValidationError(`table ${JSON.stringify(params.table)} is not declared in remediation.retention; upkeep only deletes rows from declared tables (declared: ${declared})`);
  return policy;
}

interface Resolved {
  readonly policy: RetentionPolicy;
  readonly table: QualifiedName;
  readonly archive: QualifiedName | null;
  readonly columns: string[];
}

/** A declared table, refused when it is a system catalog: a policy never deletes from those. */
async function userTable(client: pg.Client, policy: RetentionPolicy, text: string): Promise<Relation> {
  const table = await findRelation(client, text, 'table', `${policy.target}/${policy.database}`);
  if (isSystemSchema(table.schema)) throw new ValidationError(`retention "${policy.name}": ${table.schema}.${table.name} is in the system schema ${table.schema}; retention acts only on user tables`);
  return table;
}

async function resolvePolicy(client: pg.Client, policy: RetentionPolicy): Promise<Resolved> {
  const table = await userTable(client, policy, policy.table);
  const columns = await columnsOf(client, table.oid);
  if (!columns.includes(policy.timestampColumn)) throw new ValidationError(`retention "${policy.name}": column ${JSON.stringify(policy.timestampColumn)} does not exist in ${policy.table}`);
  if (policy.archiveTable === null) return { policy, table, archive: null, columns };
  const archive = await userTable(client, policy, policy.archiveTable);
  const archiveColumns = await columnsOf(client, archive.oid);
  const missing = columns.filter((column) => !archiveColumns.includes(column));
  if (missing.length > 0) throw new ValidationError(`retention "${policy.name}": archive table ${policy.archiveTable} lacks column(s) ${missing.join(', ')}`);
  return { policy, table, archive, columns };
}

/**
 * The cutoff, from the engine's clock (the one windows and cooldowns read): the plan fixes it, so
 * a dry run and the run after it at the same moment select the same rows, and run() uses it as
 * planned.
 */
function cutoffOf(policy: RetentionPolicy, nowMs: number): Date {
  return new Date(nowMs - (parseDurationSeconds(policy.olderThan) ?? 0) * 1000);
}

function sqlFor(resolved: Resolved, cutoff: Date) {
  return retentionSql({
    table: resolved.table, archive: resolved.archive, columns: resolved.columns, timestampColumn: resolved.policy.timestampColumn,
    cutoff, batchSize: resolved.policy.batchSize, where: resolved.policy.where,
  });
}

/**
 * The policy resolved against the catalog (its table, archive and columns), once per run: check,
 * plan and verify work from one reading.
 */
async function withPolicy<T>(params: RetentionParams, context: ActionContext, work: (client: pg.Client, resolved: Resolved) => Promise<T>): Promise<T> {
  const policy = findPolicy(context.config.remediation.retention, params);
  return withClient(context, policy.target, policy.database, async (client) => work(client, await once(context, `retention:${policy.name}`, () => resolvePolicy(client, policy))));
}

const rowCount = onFirstUse(() => z.object({ rows: z.coerce.number() }));

/** What run() executes: the batch statements with the cutoff written in, in batches of batchSize. */
export interface RetentionPayload {
  readonly cutoff: string;
  readonly batchSize: number;
  readonly archiveTable: string | null;
  readonly sql: Omit<RetentionSql, 'countOlder'>;
}

export type RetentionOutput = { cutoff: string; deleted: number; archived: number; batches: number; archiveTable: string | null };

export const retention: Action<RetentionParams, RetentionPayload, RetentionOutput> = {
  name: 'postgres.retention',
  description: 'Delete, or archive (INSERT INTO the archive table, then DELETE, in one transaction per batch), rows older than a declared remediation.retention policy\'s interval, in batches.',
  riskClass: 'destructive',
  params: retentionParams,
  risk: () => 'destructive',
  screen(params, config) {
    const policy = findPolicy(config.remediation.retention, params);
    checkTarget(config, policy.target, policy.database);
  },
  async resolve(params, context) {
    const policy = findPolicy(context.config.remediation.retention, params);
    checkTarget(context.config, policy.target, policy.database);
    await withPolicy(params, context, async () => undefined);
    // From here on the run names its policy and where it lives, which is what lock() needs.
    return { policy: policy.name, target: policy.target, database: policy.database };
  },
  lock(params) {
    const key = `retention:${params.policy ?? params.table}`;
    if (params.target !== undefined && params.database !== undefined) return { kind: 'postgres', target: params.target, database: params.database, key };
    return { kind: 'local', key };
  },
  async check(params, context) {
    return withPolicy(params, context, async (client, resolved) => {
      const cutoff = cutoffOf(resolved.policy, context.now());
      const older = rowCount.parse((await client.query(sqlFor(resolved, cutoff).countOlder)).rows[0]).rows;
      const observed = { cutoff: cutoff.toISOString(), olderRows: older };
      if (older === 0) return { proceed: false, reason: `no row of ${resolved.policy.table} is older than ${resolved.policy.olderThan}`, observed };
      return { proceed: true, reason: `${older} row(s) of ${resolved.policy.table} older than ${resolved.policy.olderThan}`, observed };
    });
  },
  async plan(params, context) {
    return withPolicy(params, context, async (_client, resolved) => {
      const cutoff = cutoffOf(resolved.policy, context.now());
      const { countOlder: _count, ...sql } = sqlFor(resolved, cutoff);
      const repeat = `-- repeated while a batch moves ${resolved.policy.batchSize} rows`;
      const steps: string[] = resolved.archive
        ? ['BEGIN', sql.selectBatch, `${sql.insertArchive} -- $1: the ctids selected above`, sql.deleteSelected, `COMMIT ${repeat}`]
        : [`${sql.deleteBatch} ${repeat}`];
      const payload: RetentionPayload = { cutoff: cutoff.toISOString(), batchSize: resolved.policy.batchSize, archiveTable: resolved.archive ? qualified(resolved.archive) : null, sql };
      return { steps: steps.map((detail): PlanStep => ({ kind: 'sql', detail })), payload };
    });
  },
  async run(params, payload, context) {
    const policy = findPolicy(context.config.remediation.retention, params);
    return withClient(context, policy.target, policy.database, async (client) => {
      let deleted = 0;
      let archived = 0;
      let batches = 0;
      try {
        for (;;) {
          if (context.signal.aborted) throw context.signal.reason;
          const moved = payload.archiveTable !== null ? await archiveBatch(client, payload.sql) : { deleted: (await client.query(payload.sql.deleteBatch)).rowCount ?? 0, archived: 0 };
          deleted += moved.deleted;
          archived += moved.archived;
          batches += 1;
          if (moved.deleted < payload.batchSize) break;
        }
      } catch (err) {
        // Batches already committed stay deleted (and archived): the journal says how many.
        throw new PartialWork(explainLockTimeout(err, policy.table, context.config.remediation.lockTimeoutSeconds), { cutoff: payload.cutoff, deleted, archived, batches, archiveTable: payload.archiveTable });
      }
      return { detail: { cutoff: payload.cutoff, deleted, archived, batches, archiveTable: payload.archiveTable } };
    });
  },
  async verify(params, _before, output, context) {
    const done = output.detail;
    return withPolicy(params, context, async (client, resolved) => {
      const left = rowCount.parse((await client.query(sqlFor(resolved, new Date(done.cutoff)).countOlder)).rows[0]).rows;
      const observed = { olderRowsLeft: left, deleted: done.deleted, archived: done.archived };
      if (left > 0) return { ok: false, detail: `${left} row(s) older than the cutoff ${done.cutoff} are still there`, observed };
      if (resolved.archive && done.archived !== done.deleted) return { ok: false, detail: `archived ${done.archived} rows but deleted ${done.deleted}`, observed };
      return { ok: true, detail: `${done.deleted} row(s) older than ${done.cutoff} ${resolved.archive ? `moved to ${qualified(resolved.archive)}` : 'deleted'}`, observed };
    });
  },
};

// Said when the batch's lock is refused: a role with SELECT and DELETE lacks what FOR UPDATE needs.
const LOCK_NEEDS = 'archiving locks each batch with SELECT … FOR UPDATE, which needs UPDATE on at least one column of the table besides SELECT and DELETE (docs/security.md, "Retention")';

/** One batch in one transaction: lock the rows, copy them to the archive, delete them; all or nothing. */
async function archiveBatch(client: pg.Client, sql: RetentionPayload['sql']): Promise<{ deleted: number; archived: number }> {
  await client.query('BEGIN');
  try {
    const tids = z.array(z.object({ tid: z.string() })).parse((await client.query(sql.selectBatch).catch((err: unknown) => { throw withPrivilegeNeeded(err, LOCK_NEEDS); })).rows).map((row) => row.tid);
    if (tids.length === 0) {
      await client.query('COMMIT');
      return { deleted: 0, archived: 0 };
    }
    const archived = (await client.query(sql.insertArchive, [tids])).rowCount ?? 0;
    const deleted = (await client.query(sql.deleteSelected, [tids])).rowCount ?? 0;
    if (archived !== tids.length || deleted !== tids.length) throw new Error(`batch selected ${tids.length} rows but archived ${archived} and deleted ${deleted}; rolled back`);
    await client.query('COMMIT');
    return { deleted, archived };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
