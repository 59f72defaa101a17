import { setTimeout as delay } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { DistinctErrors, errorMessage, type Logger } from '../log.js';
import type { RedisConnection } from '../systems/redis/client.js';

// Keys examined per SCAN call: redis_exporter's batch size. Each call blocks the server for well
// under a millisecond on an idle machine; 1.2M keys take 1,200 round trips, off the scrape path.
export const SCAN_COUNT = 1000;

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

export interface PatternCounts { readonly value: ReadonlyMap<string, number>; readonly ageSeconds: number }

/**
 * Key-pattern counts from a background SCAN loop on its own connection. Scrapes read the last
 * counts; they never wait for a scan, except the first, and that one only up to `firstWaitMs`:
 * a keyspace too big to scan within a scrape's timeout must not fail the scrape.
 */
export class KeyPatternCounts {
  private counts: { value: ReadonlyMap<string, number>; takenAt: number } | null = null;
  // When the first scan failed, while no scan has succeeded: the counts served (none) are as old
  // as that, so their age grows and UpkeepCacheStale fires. Before, a user whose ACL lacks SCAN
  // got no pattern series and no age at all, and no alert could say so.
  private failingSince: number | null = null;
  private scan: Promise<void> | null = null;
  private timer: NodeJS.Timeout | undefined;
  private lastScanMs = 0;
  private readonly errors = new DistinctErrors();
  private closed = false;

  constructor(
    private readonly connection: RedisConnection,
    private readonly patterns: readonly string[],
    private readonly intervalSeconds: number,
    private readonly firstWaitMs: number,
    private readonly log: Logger,
    private readonly target: string,
  ) {}

  /** The last counts and their age; none, aged from the first failure, when every scan so far failed; null until a scan has ended. */
  async current(): Promise<PatternCounts | null> {
    if (!this.counts) await Promise.race([this.scanNow(), delay(this.firstWaitMs, undefined, { ref: false })]);
    if (this.counts) return { value: this.counts.value, ageSeconds: (Date.now() - this.counts.takenAt) / 1000 };
    return this.failingSince === null ? null : { value: new Map(), ageSeconds: (Date.now() - this.failingSince) / 1000 };
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private scanNow(): Promise<void> {
    this.scan ??= this.countAll()
      .then((value) => { this.counts = { value, takenAt: Date.now() }; }, (err: unknown) => this.noteError(err))
      .finally(() => {
        this.scan = null;
        this.schedule();
      });
    return this.scan;
  }

  /**
   * The next scan starts early enough (twice the last scan's duration before the interval is up)
   * that the counts served are never older than the interval.
   */
  private schedule(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    const intervalMs = this.intervalSeconds * 1000;
    this.timer = setTimeout(() => { void this.scanNow(); }, Math.max(intervalMs - 2 * this.lastScanMs, intervalMs / 2));
    this.timer.unref();
  }

  private async countAll(): Promise<Map<string, number>> {
    const started = performance.now();
    const client = await this.connection.ready();
    const counts = new Map<string, number>();
    for (const pattern of this.patterns) counts.set(pattern, await countKeys(client, pattern));
    this.lastScanMs = performance.now() - started;
    this.errors.changed(null);
    return counts;
  }

  private noteError(err: unknown): void {
    if (!this.counts) this.failingSince ??= Date.now();
    const message = errorMessage(err);
    if (this.errors.changed(message) && !this.closed) {
      this.log.warn({ target: this.target, err: message }, this.counts ? 'redis key-pattern SCAN failed; serving the last counts' : 'redis key-pattern SCAN failed; no counts yet, their age grows from now');
    }
  }
}
