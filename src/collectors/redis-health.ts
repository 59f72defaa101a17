import type { RedisInfo } from '../systems/redis/info.js';
import type { FamilySpec, Reading } from './framework/types.js';

// Clients, evictions, persistence (AOF) and replication from the same INFO the collector reads.

const TARGET = ['target'];

export const HEALTH_FAMILIES: readonly FamilySpec[] = [
  { name: 'upkeep_redis_connected_clients', help: 'Client connections, replicas not counted (INFO connected_clients).', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_redis_blocked_clients', help: 'Clients waiting in a blocking call (BLPOP, XREAD, WAIT...).', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_redis_rejected_connections_total', help: 'Connections refused because maxclients was reached.', type: 'counter', labelNames: TARGET },
  { name: 'upkeep_redis_max_clients', help: 'The maxclients setting.', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_redis_evicted_keys_total', help: 'Keys evicted because of the maxmemory limit.', type: 'counter', labelNames: TARGET },
  { name: 'upkeep_redis_expired_keys_total', help: 'Keys removed when their TTL ran out.', type: 'counter', labelNames: TARGET },
  { name: 'upkeep_redis_maxmemory_policy_info', help: 'The maxmemory-policy setting, as the policy label (value 1).', type: 'gauge', labelNames: ['target', 'policy'] },
  { name: 'upkeep_redis_aof_enabled', help: 'Whether the append-only file is on (1) or off (0).', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_redis_aof_last_rewrite_success', help: 'Whether the last AOF rewrite succeeded (1) or failed (0) (INFO aof_last_bgrewrite_status).', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_redis_aof_last_write_success', help: 'Whether the last AOF write succeeded (1) or failed (0) (INFO aof_last_write_status).', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_redis_replica', help: 'Whether this server is a replica (1) or a primary (0) (INFO role).', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_redis_master_link_up', help: 'On a replica: whether its link to the primary is up (1) or down (0) (INFO master_link_status).', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_redis_connected_replicas', help: 'Replicas connected to this server (INFO connected_slaves).', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_redis_replication_offset_lag_bytes', help: 'On a primary: master_repl_offset minus the offset of its furthest-behind replica; 0 without replicas.', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_redis_uptime_seconds', help: 'Seconds since the server started (INFO uptime_in_seconds); a drop is a restart.', type: 'gauge', labelNames: TARGET },
];

const NUMERIC_FIELDS: readonly (readonly [string, string])[] = [
  ['connected_clients', 'upkeep_redis_connected_clients'],
  ['blocked_clients', 'upkeep_redis_blocked_clients'],
  ['rejected_connections', 'upkeep_redis_rejected_connections_total'],
  ['maxclients', 'upkeep_redis_max_clients'],
  ['evicted_keys', 'upkeep_redis_evicted_keys_total'],
  ['expired_keys', 'upkeep_redis_expired_keys_total'],
  ['aof_enabled', 'upkeep_redis_aof_enabled'],
  ['connected_slaves', 'upkeep_redis_connected_replicas'],
  ['uptime_in_seconds', 'upkeep_redis_uptime_seconds'],
];

// "ok"/"err" fields: 1 when ok.
const STATUS_FIELDS: readonly (readonly [string, string])[] = [
  ['aof_last_bgrewrite_status', 'upkeep_redis_aof_last_rewrite_success'],
  ['aof_last_write_status', 'upkeep_redis_aof_last_write_success'],
];

/** INFO's "slaveN:ip=...,port=...,state=online,offset=N,lag=N" lines: each replica's acknowledged offset. */
export function replicaOffsets(fields: ReadonlyMap<string, string>): number[] {
  const offsets: number[] = [];
  for (const [key, value] of fields) {
    if (!/^slave\d+$/.test(key)) continue;
    const offset = Number(/(?:^|,)offset=(\d+)/.exec(value)?.[1]);
    if (Number.isFinite(offset)) offsets.push(offset);
  }
  return offsets;
}

/** The readings above, for the fields this server reports (older versions and managed services leave some out). */
export function healthReadings(info: RedisInfo, target: string): Reading[] {
  const labels = { target };
  const readings: Reading[] = [];
  for (const [field, family] of NUMERIC_FIELDS) {
    const value = Number.parseFloat(info.fields.get(field) ?? '');
    if (Number.isFinite(value)) readings.push({ family, labels, value });
  }
  for (const [field, family] of STATUS_FIELDS) {
    const status = info.fields.get(field);
    if (status !== undefined) readings.push({ family, labels, value: status === 'ok' ? 1 : 0 });
  }
  const policy = info.fields.get('maxmemory_policy');
  if (policy !== undefined) readings.push({ family: 'upkeep_redis_maxmemory_policy_info', labels: { target, policy }, value: 1 });
  const role = info.fields.get('role');
  if (role !== undefined) readings.push({ family: 'upkeep_redis_replica', labels, value: role === 'slave' ? 1 : 0 });
  const link = info.fields.get('master_link_status');
  if (role === 'slave' && link !== undefined) readings.push({ family: 'upkeep_redis_master_link_up', labels, value: link === 'up' ? 1 : 0 });
  const primaryOffset = Number.parseFloat(info.fields.get('master_repl_offset') ?? '');
  if (role === 'master' && Number.isFinite(primaryOffset)) {
    const offsets = replicaOffsets(info.fields);
    const lag = offsets.length === 0 ? 0 : primaryOffset - Math.min(...offsets);
    readings.push({ family: 'upkeep_redis_replication_offset_lag_bytes', labels, value: lag });
  }
  return readings;
}
