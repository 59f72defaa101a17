import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { RedisTarget } from '../config/schema.js';
import type { Logger } from '../log.js';
import { CachedReading } from './cached.js';
import { RedisConnection } from './redis-connection.js';
import { infoReadings, parseInfo } from './redis-info.js';
import type { CacheAge, CollectorInstance, CollectorModule, FamilySpec, Reading } from './types.js';

// Keys examined per SCAN call: redis_exporter's batch size. Each call blocks the server for well
// under a millisecond on an idle machine; 1.2M keys take 1,200 round trips, off the scrape path.
export const SCAN_COUNT = 1000;

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

/** Counts keys matching a pattern with SCAN (never KEYS). A key moved by a rehash mid-scan may count twice. */
export async function countKeys(client: Redis, pattern: string, count = SCAN_COUNT): Promise<number> {
  let cursor = '0';
  let total = 0;
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', count);
    total += keys.length;
    cursor = next;
  } while (cursor !== '0');
  return total;
}

class RedisCollector implements CollectorInstance {
  readonly collector = 'redis';
  readonly target: string;
  private readonly main: RedisConnection;
  // Its own connection, so a long SCAN never queues the scrape's INFO behind it.
  private readonly scanner: RedisConnection;
  private readonly patterns: CachedReading<Map<string, number>>;
  private scanTimer: NodeJS.Timeout | undefined;
  private lastScanMs = 0;
  private lastScanError: string | null = null;
  private closed = false;

  constructor(private readonly config: RedisTarget, timeoutSeconds: number, private readonly log: Logger) {
    this.target = config.name;
    const connection = { url: config.url, timeoutSeconds, caFile: config.caFile };
    this.main = new RedisConnection({ ...connection, connectionName: 'upkeep' });
    this.scanner = new RedisConnection({ ...connection, connectionName: 'upkeep-scan' });
    this.patterns = new CachedReading(config.keyPatternRefreshSeconds, () => this.scanPatterns());
  }

  async collect(): Promise<{ readings: Reading[]; cacheAges: CacheAge[] }> {
    const client = await this.main.ready();
    const [info, slowlog] = await Promise.all([client.info(), client.call('SLOWLOG', 'LEN')]);
    const readings = infoReadings(parseInfo(info), this.target);
    readings.push({ family: 'upkeep_redis_slowlog_length', labels: { target: this.target }, value: z.number().parse(slowlog) });
    const cacheAges: CacheAge[] = [];
    if (this.config.keyPatterns.length > 0) {
      const { value, ageSeconds } = await this.patterns.get();
      this.scheduleScan();
      for (const [pattern, keys] of value) readings.push({ family: 'upkeep_redis_pattern_keys', labels: { target: this.target, pattern }, value: keys });
      cacheAges.push({ reading: 'pattern_keys', ageSeconds });
    }
    return { readings, cacheAges };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.scanTimer);
    await Promise.all([this.main.close(), this.scanner.close()]);
  }

  private async scanPatterns(): Promise<Map<string, number>> {
    const started = performance.now();
    try {
      const client = await this.scanner.ready();
      const counts = new Map<string, number>();
      for (const pattern of this.config.keyPatterns) counts.set(pattern, await countKeys(client, pattern));
      this.lastScanMs = performance.now() - started;
      this.lastScanError = null;
      return counts;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (message !== this.lastScanError) this.log.warn({ target: this.target, err: message }, 'redis key-pattern SCAN failed; serving the last counts');
      this.lastScanError = message;
      throw err;
    }
  }

  /**
   * Rescans in the background, starting early enough (twice the last scan's duration before the
   * interval is up) that the counts served are never older than keyPatternRefreshSeconds.
   */
  private scheduleScan(): void {
    if (this.scanTimer || this.closed) return;
    const intervalMs = this.config.keyPatternRefreshSeconds * 1000;
    const delayMs = Math.max(intervalMs - 2 * this.lastScanMs, intervalMs / 2);
    this.scanTimer = setTimeout(() => {
      void this.patterns.refresh().catch(() => undefined).finally(() => {
        this.scanTimer = undefined;
        this.scheduleScan();
      });
    }, delayMs);
    this.scanTimer.unref();
  }
}

export const redis: CollectorModule = {
  name: 'redis',
  families: FAMILIES,
  upFamily: { name: 'upkeep_redis_up', help: 'Whether the last collection from this Redis target succeeded (1) or failed (0).', label: 'target' },
  build({ config, log }) {
    return config.targets.redis.map((target) => new RedisCollector(target, config.collectors.timeoutSeconds, log));
  },
};
