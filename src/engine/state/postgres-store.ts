import { isFinished, runRecordSchema } from '../journal.js';
import type { RunRecord } from '../journal.js';
import { CLAIM_TTL_MS } from './guard-file.js';
import { HOST, interruptedRecord, otherProcessAlive } from './owner.js';
import { StateDb, storableJson, storableText } from './postgres-db.js';
import { PostgresGuards } from './postgres-guards.js';
import { PostgresLeases } from './postgres-leases.js';
import { PostgresSuccesses } from './postgres-successes.js';
import { migrate, SCHEMA_VERSION } from './postgres-migrate.js';
import { decodeCursor, encodeCursor, runKey } from './run-key.js';
import { retentionHorizon, type Appended, type RunFilter, type RunPage, type RunPageJson, type StateStore, type StoreOptions } from './store.js';

export interface PostgresStoreOptions extends StoreOptions {
  /** `state.postgres.url`. */
  readonly url: string;
  /** `state.postgres.schema`. */
  readonly schema: string;
  /** `state.postgres.timeoutSeconds`, in ms. */
  readonly timeoutMs: number;
}

const MAINTENANCE_MS = 3_600_000;
// Retention deletes this many runs per statement, so a first trim of millions never meets the statement timeout.
const DELETE_BATCH = 10_000;
const UNFINISHED = ['queued', 'running'];

/**
 * The shared state store: the journal and the guards' memory in a PostgreSQL schema, so any
 * number of replicas (and `upkeep run` beside them) see one state. Each run is one row holding
 * its latest record; an append is one upsert, committed (durable) before it resolves.
 */
export class PostgresStore implements StateStore {
  readonly guards: PostgresGuards;
  readonly leases: PostgresLeases;
  readonly successes: PostgresSuccesses;
  readonly skipped: readonly { file: string; lines: number }[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly now: () => number;
  /** Each run's appends in flight, chained: a run's states are written in the order they were made. */
  private readonly appending = new Map<string, Promise<Appended>>();

  private constructor(private readonly db: StateDb, private readonly options: PostgresStoreOptions) {
    this.now = options.now ?? Date.now;
    this.guards = new PostgresGuards(db, { claimTtlMs: CLAIM_TTL_MS, cooldownMs: options.cooldownMs, failureWindowMs: options.failureWindowMs });
    this.leases = new PostgresLeases(db, parseRow, this.now);
    this.successes = new PostgresSuccesses(db);
    this.timer = setInterval(() => void this.maintain(), options.maintenanceMs ?? MAINTENANCE_MS);
    this.timer.unref();
  }

  /** Connects, creates or migrates the schema (under an advisory lock), and runs maintenance once. */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const db = new StateDb({ url: options.url, schema: options.schema, timeoutMs: options.timeoutMs });
    let from: number;
    try {
      from = await migrate(db);
    } catch (err) {
      await db.close();
      throw err;
    }
    if (from < SCHEMA_VERSION) options.log.info({ schema: options.schema, from, to: SCHEMA_VERSION }, 'state.postgres: schema migrated');
    const store = new PostgresStore(db, options);
    await store.maintain();
    return store;
  }

  /** Retention of the journal and pruning of the guards' memory; a failure is logged and tried again later. */
  async maintain(): Promise<void> {
    try {
      const [newest] = await this.db.query<{ ms: string | null }>('applying state.retention', `select max(updated_ms)::text as ms from ${this.db.table('runs')}`);
      const horizon = retentionHorizon(this.now(), newest?.ms ? Number(newest.ms) : null, this.options.retentionMs);
      for (let deleted = DELETE_BATCH; deleted === DELETE_BATCH;) {
        const rows = await this.db.query('applying state.retention', `
          delete from ${this.db.table('runs')} where id in (select id from ${this.db.table('runs')} where updated_ms < $1 limit ${DELETE_BATCH})
          returning 1`, [horizon]);
        deleted = rows.length;
      }
      await this.guards.prune(this.now());
    } catch (err) {
      this.options.log.error({ err }, 'state maintenance failed (retention, rotation or compaction); it is tried again within the hour');
    }
  }

  append(record: RunRecord): { written: Promise<void>; durable: Promise<Appended> } {
    const previous = this.appending.get(record.id);
    const write = (previous ?? Promise.resolve()).then(() => this.write(record), () => this.write(record));
    this.appending.set(record.id, write);
    const done = () => { if (this.appending.get(record.id) === write) this.appending.delete(record.id); };
    write.then(done, done);
    // A commit is both: it survives upkeep being killed and, with the server's fsync, the machine going down.
    const written = write.then(() => undefined);
    // Marked handled: a caller that awaits only `durable` must not see this copy's rejection as unhandled.
    written.catch(() => undefined);
    return { written, durable: write };
  }

  /**
   * One upsert that replaces the row only while the run is unfinished and still its owner's: a
   * peer that journalled it interrupted (its owner stalled past its lease) has finished it, and
   * the owner coming back must not overwrite that. The status is the fencing token: a run never
   * becomes unfinished again, and the peer's update and this one take the row's lock in turn, so
   * exactly one of them finishes the run. A late final state is attached as `late`.
   */
  private async write(record: RunRecord): Promise<Appended> {
    const written = await this.db.query('appending to the journal', `
      insert into ${this.db.table('runs')} as run (id, queued_ms, remediation, status, trigger, host, pid, updated_ms, record)
      values ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)
      on conflict (id) do update set queued_ms = excluded.queued_ms, remediation = excluded.remediation, status = excluded.status,
        trigger = excluded.trigger, host = excluded.host, pid = excluded.pid, updated_ms = excluded.updated_ms, record = excluded.record
      where run.status = any($10) and run.host is not distinct from excluded.host and run.pid is not distinct from excluded.pid
      returning 1`,
    [storableText(record.id), runKey(record.id, record.queuedAt).time, storableText(record.remediation), record.status, record.trigger,
      record.host === undefined ? null : storableText(record.host), record.pid ?? null, Math.floor(this.now()), storableJson(record), UNFINISHED]);
    if (written.length > 0) return 'stored';
    // A progress report of the stalled owner is dropped; its outcome is kept beside the peer's status.
    if (isFinished(record.status)) {
      const { status, finishedAt, reason, error, output, verification } = record;
      await this.db.query('noting a late outcome', `
        update ${this.db.table('runs')} set record = jsonb_set(record, '{late}', $2::jsonb), updated_ms = $3 where id = $1 and status <> all($4)`,
      [storableText(record.id), storableJson({ status, finishedAt, reason, error, output, verification }), Math.floor(this.now()), UNFINISHED]);
    }
    return 'late';
  }

  async get(id: string): Promise<RunRecord | undefined> {
    const rows = await this.db.query<{ record: string }>('reading a run', `select record::text as record from ${this.db.table('runs')} where id = $1`, [storableText(id)]);
    return parseRow(rows[0]?.record);
  }

  async list(filter: RunFilter, cursor: string | null, limit: number): Promise<RunPage> {
    const page = await this.page(filter, cursor, limit);
    return { runs: page.runs.map((run) => run.record), next: page.next };
  }

  async listJson(filter: RunFilter, cursor: string | null, limit: number): Promise<RunPageJson> {
    const page = await this.page(filter, cursor, limit);
    return { runs: page.runs.map((run) => run.text), next: page.next };
  }

  /** Newest first, from below the cursor's key: one index range scan, whatever the filter. */
  private async page(filter: RunFilter, cursor: string | null, limit: number): Promise<{ runs: { record: RunRecord; text: string }[]; next: string | null }> {
    const before = cursor === null ? null : decodeCursor(cursor);
    const conditions: string[] = [];
    const params: unknown[] = [];
    const where = (column: string, value: string | undefined) => {
      if (value === undefined) return;
      params.push(storableText(value));
      conditions.push(`${column} = $${params.length}`);
    };
    where('remediation', filter.remediation);
    where('status', filter.status);
    where('trigger', filter.trigger);
    if (before) {
      params.push(before.time, before.id);
      conditions.push(`(queued_ms, id) < ($${params.length - 1}, $${params.length})`);
    }
    params.push(limit + 1);
    const rows = await this.db.query<{ queued_ms: string; id: string; record: string }>('listing runs', `
      select queued_ms, id, record::text as record from ${this.db.table('runs')}
      ${conditions.length > 0 ? `where ${conditions.join(' and ')}` : ''}
      order by queued_ms desc, id desc limit $${params.length}`, params);
    const shown = rows.slice(0, limit);
    const last = shown.at(-1);
    const runs: { record: RunRecord; text: string }[] = [];
    for (const row of shown) {
      const record = parseRow(row.record);
      if (record) runs.push({ record, text: row.record });
    }
    return { runs, next: rows.length > limit && last ? encodeCursor({ time: Number(last.queued_ms), id: last.id }) : null };
  }

  /**
   * Marks runs left queued or running by a dead process of this host as interrupted. Another
   * host's runs wait for their owner's lease to expire (leases.interruptExpired).
   */
  async recoverInterrupted(now: Date): Promise<RunRecord[]> {
    const rows = await this.db.query<{ record: string }>('finding unfinished runs', `
      select record::text as record from ${this.db.table('runs')} where status = any($1) and host = $2 order by queued_ms, id`, [UNFINISHED, storableText(HOST)]);
    const interrupted: RunRecord[] = [];
    for (const row of rows) {
      const record = parseRow(row.record);
      if (!record || otherProcessAlive(record.host, record.pid)) continue;
      const marked = interruptedRecord(record, now);
      // Only while it is still unfinished: another replica on this host may have marked it first.
      const updated = await this.db.query('marking a run interrupted', `
        update ${this.db.table('runs')} set status = 'interrupted', updated_ms = $3, record = $2::jsonb where id = $1 and status = any($4)
        returning 1`, [storableText(record.id), storableJson(marked), Math.floor(this.now()), UNFINISHED]);
      if (updated.length > 0) interrupted.push(marked);
    }
    return interrupted;
  }

  /** A journal from before this store: the PostgreSQL store starts its own history (the file store's is not imported). */
  async *legacyRecords(): AsyncGenerator<RunRecord> {
    // Nothing to hand over.
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await Promise.allSettled([...this.appending.values()]);
    await this.db.close();
  }
}

/** A row's record, checked against the record schema like every line the file store reads back. */
function parseRow(text: string | undefined): RunRecord | undefined {
  if (text === undefined) return undefined;
  const parsed = runRecordSchema.safeParse(JSON.parse(text));
  return parsed.success ? parsed.data : undefined;
}
