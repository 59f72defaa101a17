/**
 * Reads that many callers ask for at about the same moment, made together: while one read is in
 * flight, what is asked for waits and goes into the next one. A read therefore always starts after
 * each of its callers asked, so every answer is as fresh as a read of the caller's own would have
 * been (group commit, for reads). With no read in flight a request starts one at once: an idle
 * server adds no wait.
 */
export class ReadBatch<K, V> {
  private asked = new Map<K, { resolve: (value: V) => void; reject: (err: unknown) => void }[]>();
  private reading = false;

  /** `read` answers for the keys it is given; a key it leaves out gets `missing(key)`. */
  constructor(private readonly read: (keys: K[]) => Promise<ReadonlyMap<K, V>>, private readonly missing: (key: K) => V) {}

  get(key: K): Promise<V> {
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
      try {
        const found = await this.read([...batch.keys()]);
        for (const [key, waiting] of batch) {
          const value = found.get(key) ?? this.missing(key);
          for (const caller of waiting) caller.resolve(value);
        }
      } catch (err) {
        for (const waiting of batch.values()) for (const caller of waiting) caller.reject(err);
      }
    }
    this.reading = false;
  }
}
