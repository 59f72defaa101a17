import type pg from 'pg';
import { z } from 'zod';
import { BACKEND_AGE, BACKENDS, IDLE, READ_ALL_STATS, SLOTS_SQL } from '../systems/postgres/horizon.js';
import type { FamilySpec, Reading } from './framework/types.js';
import { onFirstUse } from '../lazy-schema.js';

// The vacuum horizon: VACUUM removes only rows that died before the oldest xmin anything on the
// server still holds. These readings say how far back it is held, and by what.

const TARGET = ['target'];
const SLOT = ['target', 'slot'];

export const HOLDERS = ['backend', 'replication_slot', 'prepared_xact', 'standby'] as const;

export const HORIZON_FAMILIES: readonly FamilySpec[] = [
  { name: 'upkeep_postgres_oldest_xmin_age', help: 'Age in transactions of the oldest xmin held by each kind of holder (backend, replication_slot, prepared_xact, standby); 0 when none holds one; no backend series without pg_read_all_stats (in pg_monitor).', type: 'gauge', labelNames: ['target', 'holder'] },
  { name: 'upkeep_postgres_oldest_xmin_backend_info', help: 'The backend holding the oldest xmin among backends (never its query text); absent when none holds one, and without pg_read_all_stats (in pg_monitor).', type: 'gauge', labelNames: ['target', 'pid', 'database', 'user', 'state', 'application_name', 'client_addr'] },
  { name: 'upkeep_postgres_idle_in_transaction_sessions', help: 'Sessions idle in a transaction (state idle in transaction, or aborted); absent without pg_read_all_stats (in pg_monitor).', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_postgres_idle_in_transaction_oldest_seconds', help: 'How long the longest idle-in-transaction session has been idle (now() - state_change); 0 when none; absent without pg_read_all_stats (in pg_monitor).', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_postgres_replication_slot_active', help: 'Whether a consumer is connected to the replication slot (1) or not (0).', type: 'gauge', labelNames: SLOT },
  { name: 'upkeep_postgres_replication_slot_retained_wal_bytes', help: 'WAL the slot keeps from being removed: the current (or, on a standby, replayed) WAL position minus the slot\'s restart_lsn.', type: 'gauge', labelNames: SLOT },
  { name: 'upkeep_postgres_replication_slot_xmin_age', help: 'Age in transactions of the slot\'s xmin or catalog_xmin, whichever is older; 0 when it holds neither.', type: 'gauge', labelNames: SLOT },
];

// A role without pg_read_all_stats sees other roles' backend_xid and backend_xmin but not their
// state, state_change or backend_type: no session would be idle, and every other role's backend
// would be dropped from the backends (walsenders and autovacuum workers cannot be told apart): all
// three read 0 (holder backend 0 where a pg_monitor role read 417) while a session held the
// horizon for minutes. For such a role they are NULL, and not exported; slots', prepared
// transactions' and standbys' xmin are shown to every role, and stay.
const HORIZON_SQL = `
SELECT
  CASE WHEN ${READ_ALL_STATS} THEN (SELECT count(*) FROM pg_stat_activity WHERE ${IDLE}) END::float8 AS idle_sessions,
  CASE WHEN ${READ_ALL_STATS} THEN (SELECT coalesce(extract(epoch FROM now() - min(state_change)), 0) FROM pg_stat_activity WHERE ${IDLE}) END::float8 AS idle_oldest,
  CASE WHEN ${READ_ALL_STATS} THEN (SELECT coalesce(max(${BACKEND_AGE}), 0) FROM pg_stat_activity WHERE ${BACKENDS}) END::float8 AS backend,
  (SELECT coalesce(max(greatest(age(xmin), age(catalog_xmin))), 0) FROM pg_replication_slots)::float8 AS replication_slot,
  (SELECT coalesce(max(age(transaction)), 0) FROM pg_prepared_xacts)::float8 AS prepared_xact,
  (SELECT coalesce(max(age(backend_xmin)), 0) FROM pg_stat_replication)::float8 AS standby`;

const OLDEST_BACKEND_SQL = `
SELECT pid, coalesce(datname, '') AS database, coalesce(usename, '') AS "user", coalesce(state, '') AS state,
       coalesce(application_name, '') AS application_name, coalesce(host(client_addr), 'local') AS client_addr
FROM pg_stat_activity
WHERE ${BACKENDS} AND (backend_xid IS NOT NULL OR backend_xmin IS NOT NULL) AND ${READ_ALL_STATS}
ORDER BY ${BACKEND_AGE} DESC, pid LIMIT 1`;

const horizonRow = onFirstUse(() => z.object({
  idle_sessions: z.number().nullable(),
  idle_oldest: z.number().nullable(),
  backend: z.number().nullable(),
  replication_slot: z.number(),
  prepared_xact: z.number(),
  standby: z.number(),
}));
const backendRow = onFirstUse(() => z.object({
  pid: z.number(),
  database: z.string(),
  user: z.string(),
  state: z.string(),
  application_name: z.string(),
  client_addr: z.string(),
}));
const slotRow = onFirstUse(() => z.object({ slot: z.string(), active: z.boolean(), retained_bytes: z.number().nullable(), xmin_age: z.number() }));

export async function readHorizon(pool: pg.Pool, target: string): Promise<Reading[]> {
  const [horizon] = z.tuple([horizonRow]).parse((await pool.query(HORIZON_SQL)).rows);
  const backends = z.array(backendRow).parse((await pool.query(OLDEST_BACKEND_SQL)).rows);
  const slots = z.array(slotRow).parse((await pool.query(SLOTS_SQL)).rows);
  const readings: Reading[] = [];
  // NULL: what the role may not see (HORIZON_SQL), left out rather than read as 0.
  if (horizon.idle_sessions !== null) readings.push({ family: 'upkeep_postgres_idle_in_transaction_sessions', labels: { target }, value: horizon.idle_sessions });
  if (horizon.idle_oldest !== null) readings.push({ family: 'upkeep_postgres_idle_in_transaction_oldest_seconds', labels: { target }, value: horizon.idle_oldest });
  for (const holder of HOLDERS) {
    const value = horizon[holder];
    if (value !== null) readings.push({ family: 'upkeep_postgres_oldest_xmin_age', labels: { target, holder }, value });
  }
  for (const backend of backends) {
    const { pid, ...rest } = backend;
    readings.push({ family: 'upkeep_postgres_oldest_xmin_backend_info', labels: { target, pid: String(pid), ...rest }, value: 1 });
  }
  for (const slot of slots) {
    const labels = { target, slot: slot.slot };
    readings.push({ family: 'upkeep_postgres_replication_slot_active', labels, value: slot.active ? 1 : 0 });
    if (slot.retained_bytes !== null) readings.push({ family: 'upkeep_postgres_replication_slot_retained_wal_bytes', labels, value: slot.retained_bytes });
    readings.push({ family: 'upkeep_postgres_replication_slot_xmin_age', labels, value: slot.xmin_age });
  }
  return readings;
}
