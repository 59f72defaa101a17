/**
 * A reading taken by the collection that needs it, at most once every `intervalSeconds`: the
 * collections in between are given the last one. Unlike CachedReading nothing is read in the
 * background, and a failed read is not covered by the last value: the collection that read fails
 * as it would without this, and the next one reads again. So a value given out is never older than
 * the interval (counted from when its read started, on the monotonic clock); 0 reads every time.
 */
export class ReadAtMostEvery<T> {
  private last: { readonly value: T; readonly startedMs: number } | null = null;

  constructor(private readonly intervalSeconds: number, private readonly now: () => number = () => performance.now()) {}

  /** The last value while it is younger than the interval, else `read`'s, which is given the last value (or undefined). */
  async get(read: (last: T | undefined) => Promise<T>): Promise<T> {
    const startedMs = this.now();
    if (this.last && startedMs - this.last.startedMs < this.intervalSeconds * 1000) return this.last.value;
    const value = await read(this.last?.value);
    this.last = { value, startedMs };
    return value;
  }
}
