import { z } from 'zod';
import type { RedisTarget } from '../config/schema.js';
import type { Logger } from '../log.js';
import { RedisConnection } from '../systems/redis/client.js';
import { parseInfo } from '../systems/redis/info.js';
import { HEALTH_FAMILIES, healthReadings } from './redis-health.js';
import { infoReadings } from './redis-info.js';
import { KeyPatternCounts } from './redis-patterns.js';
import type { CacheAge, CollectorInstance, CollectorModule, FamilySpec, Reading } from './framework/types.js';

const TARGET = ['target'];
const FAMILIES: readonly FamilySpec[] = [
  { name: 'upkeep_redis_mem_fragmentation_ratio', help: 'used_memory_rss / used_memory (INFO mem_fragmentation_ratio).', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_redis_memory_used_bytes', help: 'Bytes allocated by Redis (INFO used_memory).', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_redis_memory_max_bytes', help: 'The maxmemory setting; 0 means no limit.', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_redis_rdb_last_save_timestamp_seconds', help: 'Unix time of the last successful RDB save (INFO rdb_last_save_time).', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_redis_rdb_last_bgsave_success', help: 'Whether the last BGSAVE succeeded (1) or failed (0).', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_redis_rdb_changes_since_last_save', help: 'Writes since the last RDB save.', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_redis_keyspace_hits_total', help: 'Successful key lookups since the server started.', type: 'counter', labelNames: TARGET },
  { name: 'upkeep_redis_keyspace_misses_total', help: 'Failed key lookups since the server started.', type: 'counter', labelNames: TARGET },
  { name: 'upkeep_redis_keys', help: 'Keys in the database (INFO keyspace); db0 is always reported.', type: 'gauge', labelNames: ['target', 'db'] },
  { name: 'upkeep_redis_expiring_keys', help: 'Keys with an expiry in the database (INFO keyspace).', type: 'gauge', labelNames: ['target', 'db'] },
  { name: 'upkeep_redis_slowlog_length', help: 'Entries in the slow log (SLOWLOG LEN).', type: 'gauge', labelNames: TARGET },
  { name: 'upkeep_redis_pattern_keys', help: 'Keys matching the pattern in the URL\'s database, counted by a background SCAN every keyPatternRefreshSeconds.', type: 'gauge', labelNames: ['target', 'pattern'] },
];

class RedisCollector implements CollectorInstance {
  readonly collector = 'redis';
  readonly target: string;
  private readonly main: RedisConnection;
  // Its own connection, so a long SCAN never queues the scrape's INFO behind it.
  private readonly scanner: RedisConnection;
  private readonly patterns: KeyPatternCounts | null;

  constructor(config: RedisTarget, timeoutSeconds: number, log: Logger) {
    this.target = config.name;
    const connection = { url: config.url, timeoutSeconds, caFile: config.caFile };
    this.main = new RedisConnection({ ...connection, connectionName: 'upkeep' });
    this.scanner = new RedisConnection({ ...connection, connectionName: 'upkeep-scan' });
    // The first scrape waits for the first count at most half its timeout, leaving the rest for INFO.
    this.patterns = config.keyPatterns.length > 0
      ? new KeyPatternCounts(this.scanner, config.keyPatterns, config.keyPatternRefreshSeconds, (timeoutSeconds * 1000) / 2, log, config.name)
      : null;
  }

  async collect(): Promise<{ readings: Reading[]; cacheAges: CacheAge[] }> {
    const client = await this.main.ready();
    const [info, slowlog] = await Promise.all([client.info(), client.call('SLOWLOG', 'LEN')]);
    const parsed = parseInfo(info);
    const readings = [...infoReadings(parsed, this.target), ...healthReadings(parsed, this.target)];
    readings.push({ family: 'upkeep_redis_slowlog_length', labels: { target: this.target }, value: z.number().parse(slowlog) });
    const counts = await this.patterns?.current();
    if (!counts) return { readings, cacheAges: [] };
    for (const [pattern, keys] of counts.value) readings.push({ family: 'upkeep_redis_pattern_keys', labels: { target: this.target, pattern }, value: keys });
    return { readings, cacheAges: [{ reading: 'pattern_keys', ageSeconds: counts.ageSeconds }] };
  }

  async close(): Promise<void> {
    this.patterns?.close();
    await Promise.all([this.main.close(), this.scanner.close()]);
  }
}

export const redis: CollectorModule = {
  name: 'redis',
  families: [...FAMILIES, ...HEALTH_FAMILIES],
  upFamily: { name: 'upkeep_redis_up', help: 'Whether the last collection from this Redis target succeeded (1) or failed (0).', label: 'target' },
  build({ config, log }) {
    return config.targets.redis.map((target) => new RedisCollector(target, config.collectors.timeoutSeconds, log));
  },
};
