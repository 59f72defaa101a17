import type pg from 'pg';
import { z } from 'zod';
import type { FamilySpec, Reading } from './framework/types.js';
import { READ_ALL_STATS } from '../systems/postgres/horizon.js';
import { onFirstUse } from '../lazy-schema.js';

// Replication seen from both ends: a primary reports each standby (pg_stat_replication), a
// standby reports how far its replay is behind; the WAL position makes "WAL written per second"
// a rate() of a counter that never resets.

const TARGET = ['target'];
const STANDBY = ['target', 'standby'];

export const REPLICATION_FAMILIES: readonly FamilySpec[] = [
  { name: 'upkeep_postgres_in_recovery', help: 'Whether the server is a standby (in recovery, 1) or a primary (0).', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_postgres_replication_lag_seconds', help: 'On a primary, per standby: pg_stat_replication.replay_lag (0 once the standby has caught up and the server reports none); absent without pg_read_all_stats (in pg_monitor).', type: 'gauge', labelNames: STANDBY },
  { name: 'upkeep_postgres_replication_lag_bytes', help: 'On a primary, per standby: WAL bytes between the current position and the standby\'s replay_lsn; absent without pg_read_all_stats (in pg_monitor).', type: 'gauge', labelNames: STANDBY },
  { name: 'upkeep_postgres_replication_info', help: 'On a primary, one series per standby with its state and sync_state (pg_stat_replication); absent without pg_read_all_stats (in pg_monitor).', type: 'gauge', labelNames: ['target', 'standby', 'state', 'sync_state', 'client_addr'] },
  { name: 'upkeep_postgres_standby_replay_lag_seconds', help: 'On a standby: now() - pg_last_xact_replay_timestamp() (the time since it started when it has replayed no transaction since), 0 when everything received is replayed.', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_postgres_standby_streaming', help: 'On a standby set to stream (primary_conninfo): whether its WAL receiver is streaming from the primary (1) or not (0: the primary unreachable, the receiver restarting); absent on a standby that recovers from the archive only, and without pg_read_all_stats (in pg_monitor).', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_postgres_wal_bytes_total', help: 'WAL written since the cluster was created (pg_current_wal_lsn() - \'0/0\'); on a primary only.', type: 'counter', labelNames: TARGET },
];

// A standby that has replayed no transaction since it started has no replay timestamp; it used to
// read 0 (caught up) while it was minutes behind (restarted with recovery_min_apply_delay, or
// paused). The transactions it replayed before are older than its start, so the time since it
// started is a lower bound of its lag, and PostgresReplicationLag still sees it.
// The streaming figure is left out where it would read 0 for good, and PostgresStandbyNotStreaming
// fire: on a standby without primary_conninfo (it recovers from the archive only), and for a role
// without pg_read_all_stats, to which pg_stat_wal_receiver shows no status. pg_settings hides
// primary_conninfo (it may hold a password) from a role without pg_read_all_settings: such a
// standby is taken as one that streams. Only whether the setting is empty is read.
const SERVER_SQL = `
SELECT pg_is_in_recovery() AS in_recovery,
       CASE WHEN NOT pg_is_in_recovery() THEN NULL
            WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE extract(epoch FROM now() - coalesce(pg_last_xact_replay_timestamp(), pg_postmaster_start_time())) END::float8 AS replay_lag,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') END::float8 AS wal_bytes,
       CASE WHEN pg_is_in_recovery() AND ${READ_ALL_STATS}
                 AND coalesce((SELECT setting <> '' FROM pg_settings WHERE name = 'primary_conninfo'), true)
            THEN (SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming') END::float8 AS streaming`;

// Bounded by max_wal_senders. A cascading standby's own position is its replay position. A role
// without pg_read_all_stats sees each standby's application_name and nothing else (its state,
// address, positions and lags NULL): its lag read 0 and its state "", so it gets no row.
const STANDBYS_SQL = `
SELECT application_name, coalesce(host(client_addr), 'local') AS client_addr, coalesce(client_port, -1) AS client_port,
       coalesce(state, '') AS state, coalesce(sync_state, '') AS sync_state,
       coalesce(extract(epoch FROM replay_lag), 0)::float8 AS lag_seconds,
       pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, replay_lsn)::float8 AS lag_bytes
FROM pg_stat_replication WHERE ${READ_ALL_STATS} ORDER BY application_name, client_addr, client_port`;

const serverRow = onFirstUse(() => z.object({ in_recovery: z.boolean(), replay_lag: z.number().nullable(), wal_bytes: z.number().nullable(), streaming: z.number().nullable() }));
const standbyRow = onFirstUse(() => z.object({
  application_name: z.string(),
  client_addr: z.string(),
  client_port: z.number(),
  state: z.string(),
  sync_state: z.string(),
  lag_seconds: z.number(),
  lag_bytes: z.number().nullable(),
}));
export type StandbyRow = z.output<typeof standbyRow>;

/**
 * The `standby` label: its application_name (the standby's cluster_name, or what its
 * primary_conninfo sets), with the address added where two standbys share one, so each keeps
 * its own series.
 */
export function standbyNames(standbys: readonly Pick<StandbyRow, 'application_name' | 'client_addr' | 'client_port'>[]): string[] {
  const counts = new Map<string, number>();
  for (const standby of standbys) counts.set(standby.application_name, (counts.get(standby.application_name) ?? 0) + 1);
  return standbys.map((standby) => ((counts.get(standby.application_name) ?? 0) > 1
    ? `${standby.application_name}@${standby.client_addr}:${standby.client_port}`
    : standby.application_name));
}

export async function readReplication(pool: pg.Pool, target: string): Promise<Reading[]> {
  const [server] = z.tuple([serverRow]).parse((await pool.query(SERVER_SQL)).rows);
  const standbys = z.array(standbyRow).parse((await pool.query(STANDBYS_SQL)).rows);
  const labels = { target };
  const readings: Reading[] = [{ family: 'upkeep_postgres_in_recovery', labels, value: server.in_recovery ? 1 : 0 }];
  if (server.replay_lag !== null) readings.push({ family: 'upkeep_postgres_standby_replay_lag_seconds', labels, value: server.replay_lag });
  if (server.wal_bytes !== null) readings.push({ family: 'upkeep_postgres_wal_bytes_total', labels, value: server.wal_bytes });
  // A standby cut off from its primary replays nothing more; its lag shows it only once it exceeds
  // the alert's threshold, and only while a transaction was replayed since it started.
  if (server.streaming !== null) readings.push({ family: 'upkeep_postgres_standby_streaming', labels, value: server.streaming > 0 ? 1 : 0 });
  const names = standbyNames(standbys);
  standbys.forEach((row, index) => {
    const standby = names[index] ?? row.application_name;
    readings.push({ family: 'upkeep_postgres_replication_lag_seconds', labels: { target, standby }, value: row.lag_seconds });
    if (row.lag_bytes !== null) readings.push({ family: 'upkeep_postgres_replication_lag_bytes', labels: { target, standby }, value: row.lag_bytes });
    readings.push({ family: 'upkeep_postgres_replication_info', labels: { target, standby, state: row.state, sync_state: row.sync_state, client_addr: row.client_addr }, value: 1 });
  });
  return readings;
}
