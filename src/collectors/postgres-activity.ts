import type pg from 'pg';
import { z } from 'zod';
import type { FamilySpec, Reading } from './framework/types.js';
import { READ_ALL_STATS } from '../systems/postgres/horizon.js';
import { onFirstUse } from '../lazy-schema.js';

// What the server is doing as a whole: connections against the limit, lock waits, autovacuum
// workers against theirs, and per-database deadlock and rollback counters.

const TARGET = ['target'];
const DATABASE = ['target', 'database'];

export const ACTIVITY_FAMILIES: readonly FamilySpec[] = [
  { name: 'upkeep_postgres_connections', help: 'Client connections by state (pg_stat_activity, client backends; "unknown" while a backend has no state yet); absent without pg_read_all_stats (in pg_monitor).', type: 'gauge', labelNames: ['target', 'state'] },
  { name: 'upkeep_postgres_max_connections', help: 'The max_connections setting.', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_postgres_lock_waits', help: 'Backends waiting for a lock (pg_locks, not granted).', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_postgres_oldest_lock_wait_seconds', help: 'How long the longest lock wait has lasted (pg_locks.waitstart); 0 when none.', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_postgres_autovacuum_workers', help: 'Autovacuum workers running now; absent without pg_read_all_stats (in pg_monitor).', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_postgres_autovacuum_max_workers', help: 'The autovacuum_max_workers setting.', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_postgres_deadlocks_total', help: 'Deadlocks detected in the database (pg_stat_database.deadlocks).', type: 'counter', labelNames: DATABASE },
  { name: 'upkeep_postgres_rollbacks_total', help: 'Transactions rolled back in the database (pg_stat_database.xact_rollback).', type: 'counter', labelNames: DATABASE },
];

/**
 * Reported even at 0, so a graph of them never has holes. `unknown` is among them: a backend
 * still authenticating has no state yet, so without it the series would come and go.
 */
export const CONNECTION_STATES = ['active', 'idle', 'idle in transaction', 'idle in transaction (aborted)', 'fastpath function call', 'disabled', 'unknown'] as const;

// Walsenders, autovacuum and background workers do not count against max_connections. A role
// without pg_read_all_stats sees neither the state nor the backend_type of other roles' sessions:
// they cannot be told from the logical replication launcher or a parallel worker, so counted they
// would be wrong, and left out (a filter on backend_type) the counts read low, all of them
// plausible (on one server the sum read 4 where a pg_monitor role counted 9). Such a role gets no
// row at all, and no series; the scrape's own session is a client backend, so any other gets one.
const CONNECTIONS_SQL = `
SELECT coalesce(state, 'unknown') AS state, count(*)::float8 AS connections
FROM pg_stat_activity WHERE backend_type = 'client backend' AND ${READ_ALL_STATS} GROUP BY 1 ORDER BY 1`;

// An autovacuum worker runs as no role: a role without pg_read_all_stats sees neither its type
// nor anything telling it from the checkpointer's row, and would count 0 (NULL here).
const SERVER_SQL = `
SELECT current_setting('max_connections')::float8 AS max_connections,
       current_setting('autovacuum_max_workers')::float8 AS autovacuum_max_workers,
       CASE WHEN ${READ_ALL_STATS} THEN (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker') END::float8 AS autovacuum_workers,
       (SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted)::float8 AS lock_waits,
       (SELECT coalesce(extract(epoch FROM now() - min(waitstart)), 0) FROM pg_locks WHERE NOT granted)::float8 AS oldest_lock_wait`;

// The row with a NULL datname holds shared catalogs' counters, not a database's.
const DATABASES_SQL = `
SELECT datname AS database, deadlocks::float8 AS deadlocks, xact_rollback::float8 AS rollbacks
FROM pg_stat_database WHERE datname IS NOT NULL ORDER BY datname`;

const connectionRow = onFirstUse(() => z.object({ state: z.string(), connections: z.number() }));
const serverRow = onFirstUse(() => z.object({
  max_connections: z.number(),
  autovacuum_max_workers: z.number(),
  autovacuum_workers: z.number().nullable(),
  lock_waits: z.number(),
  oldest_lock_wait: z.number(),
}));
const databaseRow = onFirstUse(() => z.object({ database: z.string(), deadlocks: z.number(), rollbacks: z.number() }));

export async function readActivity(pool: pg.Pool, target: string): Promise<Reading[]> {
  const connections = z.array(connectionRow).parse((await pool.query(CONNECTIONS_SQL)).rows);
  const [server] = z.tuple([serverRow]).parse((await pool.query(SERVER_SQL)).rows);
  const databases = z.array(databaseRow).parse((await pool.query(DATABASES_SQL)).rows);
  const labels = { target };
  const readings: Reading[] = [];
  // No row: the role may not see other roles' sessions (CONNECTIONS_SQL), so no count is known.
  if (connections.length > 0) {
    const byState = new Map<string, number>(CONNECTION_STATES.map((state) => [state, 0]));
    for (const row of connections) byState.set(row.state, row.connections);
    for (const [state, value] of byState) readings.push({ family: 'upkeep_postgres_connections', labels: { target, state }, value });
  }
  readings.push(
    { family: 'upkeep_postgres_max_connections', labels, value: server.max_connections },
    { family: 'upkeep_postgres_lock_waits', labels, value: server.lock_waits },
    { family: 'upkeep_postgres_oldest_lock_wait_seconds', labels, value: server.oldest_lock_wait },
  );
  if (server.autovacuum_workers !== null) readings.push({ family: 'upkeep_postgres_autovacuum_workers', labels, value: server.autovacuum_workers });
  readings.push({ family: 'upkeep_postgres_autovacuum_max_workers', labels, value: server.autovacuum_max_workers });
  for (const row of databases) {
    readings.push(
      { family: 'upkeep_postgres_deadlocks_total', labels: { target, database: row.database }, value: row.deadlocks },
      { family: 'upkeep_postgres_rollbacks_total', labels: { target, database: row.database }, value: row.rollbacks },
    );
  }
  return readings;
}
