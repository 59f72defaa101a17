import type { RedisInfo } from '../systems/redis/info.js';
import type { Reading } from './framework/types.js';

// INFO field -> metric. Fields a server does not report (older versions, managed services) are skipped.
const NUMERIC_FIELDS: readonly (readonly [string, string])[] = [
  ['mem_fragmentation_ratio', 'upkeep_redis_mem_fragmentation_ratio'],
  ['used_memory', 'upkeep_redis_memory_used_bytes'],
  ['maxmemory', 'upkeep_redis_memory_max_bytes'],
  ['rdb_last_save_time', 'upkeep_redis_rdb_last_save_timestamp_seconds'],
  ['rdb_changes_since_last_save', 'upkeep_redis_rdb_changes_since_last_save'],
  ['keyspace_hits', 'upkeep_redis_keyspace_hits_total'],
  ['keyspace_misses', 'upkeep_redis_keyspace_misses_total'],
];

/**
 * The readings INFO gives for one target. db0 is always reported (0 when empty), since INFO
 * leaves empty databases out and a key-count series that vanishes would hide "it drained".
 */
export function infoReadings(info: RedisInfo, target: string): Reading[] {
  const readings: Reading[] = [];
  for (const [field, family] of NUMERIC_FIELDS) {
    const value = Number.parseFloat(info.fields.get(field) ?? '');
    if (Number.isFinite(value)) readings.push({ family, labels: { target }, value });
  }
  const bgsave = info.fields.get('rdb_last_bgsave_status');
  if (bgsave !== undefined) readings.push({ family: 'upkeep_redis_rdb_last_bgsave_success', labels: { target }, value: bgsave === 'ok' ? 1 : 0 });
  const keyspace = info.keyspace.some((entry) => entry.db === 'db0') ? info.keyspace : [{ db: 'db0', keys: 0, expires: 0 }, ...info.keyspace];
  for (const entry of keyspace) {
    readings.push({ family: 'upkeep_redis_keys', labels: { target, db: entry.db }, value: entry.keys });
    readings.push({ family: 'upkeep_redis_expiring_keys', labels: { target, db: entry.db }, value: entry.expires });
  }
  return readings;
}
