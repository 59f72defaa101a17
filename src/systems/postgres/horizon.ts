import type pg from 'pg';
import { z } from 'zod';
import { prepared } from './prepared.js';
import { onFirstUse } from '../../lazy-schema.js';

// The vacuum horizon: VACUUM removes only rows that died before the oldest xmin anything on the
// server still holds. The horizon collector (what holds it, for the metrics) and postgres.vacuum's
// check (what would make a run useless) read it with these same conditions.

// The collector's own sessions (application_name upkeep) hold a snapshot only for the length of a
// query under statement_timeout; counting them would name upkeep as the holder whenever nothing
// else holds one. Remediations (upkeep:<runId>) are counted: a long batch does hold it.
export const NOT_COLLECTOR = "application_name IS DISTINCT FROM 'upkeep'";
export const IDLE = `state IN ('idle in transaction', 'idle in transaction (aborted)') AND ${NOT_COLLECTOR}`;
// Walsenders' xmin is the standby's (hot_standby_feedback), counted as `standby`; autovacuum
// workers' xmin is ignored by other vacuums.
export const BACKENDS = `${NOT_COLLECTOR} AND backend_type NOT IN ('walsender', 'autovacuum worker')`;
export const BACKEND_AGE = 'greatest(age(backend_xid), age(backend_xmin))';
// True when the session's role sees every role's sessions, as pg_stat_activity itself decides:
// without pg_read_all_stats (in pg_monitor) their state, type and transactions are hidden.
export const READ_ALL_STATS = "pg_has_role('pg_read_all_stats', 'USAGE')";

// Slots are bounded by max_replication_slots. restart_lsn is NULL for a slot that never reserved WAL.
export const SLOTS_SQL = `
SELECT slot_name AS slot, active,
       pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, restart_lsn)::float8 AS retained_bytes,
       coalesce(greatest(age(xmin), age(catalog_xmin)), 0)::float8 AS xmin_age
FROM pg_replication_slots ORDER BY slot_name`;

/**
 * What holds the horizon for a user table of this session's database, oldest first: sessions
 * idle in a transaction here (a running statement ends by itself, under statement_timeout),
 * prepared transactions of this database, replication slots' xmin (catalog_xmin holds back only
 * the system catalogs) and standbys' hot_standby_feedback (a walsender's xmin). Never this
 * session itself.
 */
const HOLDERS = prepared('horizon_holders', `
SELECT 'backend' AS kind, pid::text AS name, state, ${BACKEND_AGE}::float8 AS age,
       extract(epoch FROM now() - state_change)::float8 AS idle_seconds, extract(epoch FROM xact_start)::float8 AS since
  FROM pg_stat_activity
 WHERE ${IDLE} AND ${BACKENDS} AND datname = current_database() AND pid <> pg_backend_pid()
   AND (backend_xid IS NOT NULL OR backend_xmin IS NOT NULL)
UNION ALL
SELECT 'prepared_xact', gid, NULL, age(transaction)::float8, NULL, extract(epoch FROM prepared)::float8 FROM pg_prepared_xacts WHERE database = current_database()
UNION ALL
SELECT 'replication_slot', slot_name::text, CASE WHEN active THEN 'active' ELSE 'inactive' END, age(xmin)::float8, NULL, NULL
  FROM pg_replication_slots WHERE xmin IS NOT NULL
UNION ALL
SELECT 'standby', coalesce(nullif(application_name, ''), pid::text), state, age(backend_xmin)::float8, NULL, NULL
  FROM pg_stat_replication WHERE backend_xmin IS NOT NULL
ORDER BY age DESC, kind, name`);

const holderRow = onFirstUse(() => z.object({
  kind: z.enum(['backend', 'prepared_xact', 'replication_slot', 'standby']),
  name: z.string(),
  state: z.string().nullable(),
  age: z.number(),
  idle_seconds: z.number().nullable(),
  /** When the hold began (epoch seconds): a backend's transaction start, a prepared transaction's; unknown for slots and standbys. */
  since: z.number().nullable(),
}));
export type HorizonHolder = z.infer<typeof holderRow>;

/**
 * Whether the holder kept the last vacuum of a table (epoch seconds) from removing its dead
 * tuples: it held the horizon then, so what that vacuum left, and all that died since, is newer
 * than the horizon and another vacuum cannot remove it. A table never vacuumed may hold older
 * dead tuples, which a vacuum would remove; a slot or standby gives no start, so it counts once
 * the table has been vacuumed at all.
 */
export function heldAtVacuum(holder: HorizonHolder, lastVacuum: number | null): boolean {
  return lastVacuum !== null && (holder.since === null || holder.since < lastVacuum);
}

// The array holds the row's schema itself (unwrap builds it), so no row is parsed through a z.lazy.
const holderRows = onFirstUse(() => z.array(holderRow.unwrap()));

export async function horizonHolders(client: pg.Client): Promise<HorizonHolder[]> {
  return holderRows.parse((await client.query(HOLDERS())).rows);
}

/** The holder as the journal names it: "backend pid 4242 (idle in transaction, xmin age 12, idle 30s)". */
export function describeHolder(holder: HorizonHolder): string {
  const age = `xmin age ${holder.age}`;
  switch (holder.kind) {
    case 'backend':
      return `backend pid ${holder.name} (${holder.state ?? 'unknown state'}, ${age}, idle ${Math.round(holder.idle_seconds ?? 0)}s)`;
    case 'prepared_xact':
      return `prepared transaction ${JSON.stringify(holder.name)} (${age})`;
    case 'replication_slot':
      return `replication slot ${JSON.stringify(holder.name)} (${holder.state ?? ''}, ${age})`;
    case 'standby':
      return `standby ${JSON.stringify(holder.name)} (hot_standby_feedback, ${age})`;
  }
}
