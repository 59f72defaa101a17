/**
 * Reads that many callers ask for at about the same moment, made together: while one read is in
 * flight, what is asked for waits and goes into the next one. A read therefore always starts after
 * each of its callers asked, so every answer is as fresh as a read of the caller's own would have
 * been (group commit, for reads). With no read in flight a request starts one at once: an idle
 * server adds no wait.
 *
 * With `maxAgeMs`, a key's answer from a read that started at most that long before the request
 * is given again instead (on the monotonic clock): a flood of requests for the same few keys then
 * costs a read per key every `maxAgeMs`, not one per read in flight.
 */
export class ReadBatch<K, V> {
  private asked = new Map<K, { resolve: (value: V) => void; reject: (err: unknown) => void }[]>();
  private reading = false;
  /** Answers that may be given again, with when their read started; only those under maxAgeMs are kept. */
  private readonly recent = new Map<K, { value: V; startedMs: number }>();

  /** `read` answers for the keys it is given; a key it leaves out gets `missing(key)`. */
  constructor(
    private readonly read: (keys: K[]) => Promise<ReadonlyMap<K, V>>,
    private readonly missing: (key: K) => V,
    private readonly maxAgeMs = 0,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** How many answers are kept to be given again. */
  get kept(): number {
    return this.recent.size;
  }

  get(key: K): Promise<V> {
    const known = this.recent.get(key);
    if (known && this.now() - known.startedMs <= this.maxAgeMs) return Promise.resolve(known.value);
    return new Promise<V>((resolve, reject) => {
      const waiting = this.asked.get(key);
      if (waiting) waiting.push({ resolve, reject });
      else this.asked.set(key, [{ resolve, reject }]);
      if (!this.reading) void this.readAll();
    });
  }

  private async readAll(): Promise<void> {
    this.reading = true;
    while (this.asked.size > 0) {
      const batch = this.asked;
      this.asked = new Map();
      const startedMs = this.now();
      try {
        const found = await this.read([...batch.keys()]);
        this.forgetOlderThan(this.now() - this.maxAgeMs);
        for (const [key, waiting] of batch) {
          const value = found.get(key) ?? this.missing(key);
          if (this.maxAgeMs > 0) this.recent.set(key, { value, startedMs });
          for (const caller of waiting) caller.resolve(value);
        }
      } catch (err) {
        for (const waiting of batch.values()) for (const caller of waiting) caller.reject(err);
      }
    }
    this.reading = false;
  }

  /** Keys come from alerts' labels: what no request may be given any more is let go, so the map holds only the last maxAgeMs' keys. */
  private forgetOlderThan(ms: number): void {
    for (const [key, known] of this.recent) if (known.startedMs < ms) this.recent.delete(key);
  }
}
