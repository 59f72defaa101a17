/**
 * A reading that is expensive to take (table sizes, SCAN counts, docker system df) refreshes in
 * the background on its own interval; scrapes read the last value and report its age.
 * The first scrape waits for the first value so a fresh process never exports an empty cache.
 * With `deferMs`, a refresh asked for by a stale read starts that much later, once: a read made for
 * a scrape then runs between scrapes rather than beside the one that asked for it.
 */
export class CachedReading<T> {
  private value: T | undefined;
  private takenAt = 0;
  private refreshing: Promise<T> | null = null;
  private timer: NodeJS.Timeout | undefined;
  private deferred: NodeJS.Timeout | undefined;
  private lastError: Error | null = null;

  constructor(
    private readonly intervalSeconds: number,
    private readonly fetch: () => Promise<T>,
    private readonly now: () => number = Date.now,
    private readonly deferMs = 0,
  ) {}

  /** The cached value and its age, refreshing first only when nothing has been read yet. */
  async get(): Promise<{ value: T; ageSeconds: number }> {
    if (this.value === undefined) await this.refresh();
    else if (this.isStale()) this.refreshSoon();
    if (this.value === undefined) throw this.lastError ?? new Error('no value');
    return { value: this.value, ageSeconds: (this.now() - this.takenAt) / 1000 };
  }

  /** Also refresh on a timer, so the value stays fresh between scrapes. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => { void this.refresh().catch(() => undefined); }, this.intervalSeconds * 1000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    clearTimeout(this.deferred);
    this.deferred = undefined;
  }

  get error(): Error | null { return this.lastError; }

  /** A refresh in the background, now or after deferMs (one at a time). */
  private refreshSoon(): void {
    if (this.deferMs === 0) {
      void this.refresh().catch(() => undefined);
      return;
    }
    if (this.deferred || this.refreshing) return;
    this.deferred = setTimeout(() => {
      this.deferred = undefined;
      void this.refresh().catch(() => undefined);
    }, this.deferMs);
    this.deferred.unref();
  }

  private isStale(): boolean {
    return this.now() - this.takenAt >= this.intervalSeconds * 1000;
  }

  refresh(): Promise<T> {
    if (!this.refreshing) {
      this.refreshing = this.fetch()
        .then((value) => {
          this.value = value;
          this.takenAt = this.now();
          this.lastError = null;
          return value;
        }, (err: unknown) => {
          this.lastError = err instanceof Error ? err : new Error(String(err));
          throw this.lastError;
        })
        .finally(() => { this.refreshing = null; });
    }
    return this.refreshing;
  }
}
