// An array is not handed out for a request under a quarter of its length: a catalog that shrank
// gets arrays of its own size, and the big ones are dropped once two collections go by without them.
const MAX_WASTE = 4;
// Arrays kept for reuse at most: a collection of 3 databases borrows about 20.
const MAX_FREE = 64;

/**
 * Float64Arrays reused from one collection to the next. A typed array's numbers live outside the
 * V8 heap; one that lives until the next scrape is promoted with its collection and freed only by
 * a full collection, which their growth alone starts only past 64 MB. At 10,200 tables a scrape
 * made about 2 MB of them, and a process held 10-30 MB of dead ones at its peak
 * (docs/performance.md, "Reused columns").
 */
export class ArrayPool {
  private free: { array: Float64Array; sweeps: number }[] = [];

  /** The arrays one use borrows from the pool, given back together once nothing reads them. */
  borrow(): Borrowed {
    return new Borrowed(this);
  }

  /** An array of at least `length` numbers; what it holds is whatever was written into it last. */
  take(length: number): Float64Array {
    let best = -1;
    for (let i = 0; i < this.free.length; i += 1) {
      const size = this.free[i]!.array.length;
      if (size >= length && size <= MAX_WASTE * length + 64 && (best === -1 || size < this.free[best]!.array.length)) best = i;
    }
    if (best === -1) return new Float64Array(length);
    return this.free.splice(best, 1)[0]!.array;
  }

  give(arrays: readonly Float64Array[]): void {
    for (const array of arrays) if (this.free.length < MAX_FREE) this.free.push({ array, sweeps: 0 });
  }

  /** Called as each collection starts: an array no collection took in the last two is dropped. */
  sweep(): void {
    this.free = this.free.filter((entry) => {
      entry.sweeps += 1;
      return entry.sweeps <= 2;
    });
  }

  /** How many arrays wait for reuse (for the tests). */
  get size(): number {
    return this.free.length;
  }
}

/** Where a reading or selection gets its arrays: a pool's Borrowed, or FRESH. */
export interface ArraySource {
  /** An array of exactly `length` numbers. */
  take(length: number): Float64Array;
}

/** A new array for every request: for readings made once (the tests, one-off reads). */
export const FRESH: ArraySource = { take: (length) => new Float64Array(length) };

/** Arrays taken for one use (a collection's readings, or the columns it publishes). */
export class Borrowed implements ArraySource {
  private readonly arrays: Float64Array[] = [];

  constructor(private readonly pool: ArrayPool) {}

  /** An array of exactly `length` numbers: a view of a pooled one when that one is longer. */
  take(length: number): Float64Array {
    const array = this.pool.take(length);
    this.arrays.push(array);
    return array.length === length ? array : array.subarray(0, length);
  }

  /** Gives every array back: their contents will be overwritten, so nothing may read them after this. */
  giveBack(): void {
    this.pool.give(this.arrays.splice(0));
  }
}
