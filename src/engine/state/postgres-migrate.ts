import type { StateDb } from './postgres-db.js';

/**
 * The PostgreSQL state store's tables, version by version. A migration is only ever appended:
 * a replica of an older upkeep must find the tables it knows unchanged.
 *
 * runs: one row per run, its latest record as jsonb, with the columns GET /runs filters and
 * pages on (queued_ms is the run's place in the order: the time in its id). The guards: alert
 * claims and schedule tick claims (a unique key each, so one statement claims), the last
 * execution per lock key (cooldowns), failures since the last success (circuit breaker) and
 * the last success per remediation. leases (version 2): each process's lease, so a peer can
 * tell a dead replica's runs. members (version 3): the replicas that collect (targets shared out).
 * success_records (version 4): the newest success per (remediation, subject), for the collectors.
 */
const MIGRATIONS: readonly ((t: (name: string) => string) => string[])[] = [
  (t) => [
    `create table ${t('runs')} (
      id text collate "C" primary key,
      queued_ms bigint not null,
      remediation text not null,
      status text not null,
      trigger text not null,
      host text,
      pid integer,
      updated_ms bigint not null,
      record jsonb not null
    )`,
    `create index runs_order on ${t('runs')} (queued_ms, id)`,
    `create index runs_by_remediation on ${t('runs')} (remediation, queued_ms, id)`,
    `create index runs_by_status on ${t('runs')} (status, queued_ms, id)`,
    `create index runs_by_trigger on ${t('runs')} (trigger, queued_ms, id)`,
    `create index runs_by_update on ${t('runs')} (updated_ms)`,
    `create index runs_unfinished on ${t('runs')} (host) where status in ('queued', 'running')`,
    `create table ${t('alert_claims')} (key text collate "C" primary key, run_id text not null, claimed_ms bigint not null)`,
    `create index alert_claims_by_age on ${t('alert_claims')} (claimed_ms)`,
    `create table ${t('tick_claims')} (job text not null, nominal_ms bigint not null, run_id text not null, primary key (job, nominal_ms))`,
    `create index tick_claims_by_age on ${t('tick_claims')} (nominal_ms)`,
    `create table ${t('executions')} (lock_key text primary key, last_ms bigint not null)`,
    `create index executions_by_age on ${t('executions')} (last_ms)`,
    `create table ${t('failures')} (remediation text not null, at_ms bigint not null, run_id text not null, primary key (remediation, at_ms, run_id))`,
    `create table ${t('successes')} (remediation text primary key, last_ms bigint not null)`,
  ],
  // Leases: one row per live process (replica or `upkeep run`), renewed while it lives; its
  // expiry is the database's clock, so replicas' clocks never have to agree.
  (t) => [
    `create table ${t('leases')} (host text collate "C" not null, pid integer not null, expires_ms bigint not null, primary key (host, pid))`,
  ],
  // members: one row per running replica, its heartbeat renewed every few seconds on the
  // database's clock (postgres-members.ts), so the replicas' own clocks never decide who is live.
  (t) => [
    `create table ${t('members')} (
      id text collate "C" primary key,
      host text not null,
      pid integer not null,
      joined_at timestamptz not null default clock_timestamp(),
      heartbeat_at timestamptz not null default clock_timestamp()
    )`,
  ],
  // success_records: the newest success of each (remediation, subject), such as the backup
  // backup.verify restored and its file, so whichever replica collects the backup reports it.
  (t) => [
    `create table ${t('success_records')} (
      remediation text collate "C" not null,
      subject text collate "C" not null,
      at_ms bigint not null,
      detail text not null,
      primary key (remediation, subject)
    )`,
  ],
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Creates the schema and its tables, or brings them up to this upkeep's version, in one
 * transaction under an advisory lock: replicas starting at once wait for each other, and the
 * second finds the work done. Returns the version found before (0 for a new schema).
 */
export async function migrate(db: StateDb): Promise<number> {
  return db.transaction('migrating the schema', async (client) => {
    await client.query('select pg_advisory_xact_lock(hashtextextended($1, 0))', [`upkeep.state:${db.schema}`]);
    // Looked up first: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege on the database
    // even when the schema exists, and a role that only owns its schema has none.
    const { rows: found } = await client.query('select 1 from pg_namespace where nspname = $1', [db.schema]);
    if (found.length === 0) await client.query(`create schema "${db.schema}"`);
    await client.query(`create table if not exists ${db.table('schema_version')} (version integer not null)`);
    const { rows } = await client.query<{ version: number | null }>(`select max(version) as version from ${db.table('schema_version')}`);
    const current = rows[0]?.version ?? 0;
    if (current > SCHEMA_VERSION) {
      throw new Error(`the schema "${db.schema}" is at version ${current}, newer than this upkeep knows (${SCHEMA_VERSION}): upgrade upkeep, or use another schema`);
    }
    for (let version = current + 1; version <= SCHEMA_VERSION; version += 1) {
      for (const statement of MIGRATIONS[version - 1]?.((name) => db.table(name)) ?? []) await client.query(statement);
      await client.query(`insert into ${db.table('schema_version')} (version) values ($1)`, [version]);
    }
    return current;
  });
}
