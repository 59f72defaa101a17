/**
 * What is held while it is in flight (a run being admitted, a run in the queue's slots, a step
 * waiting for the executor thread), by key, in a Map that lets go of a value when it is deleted.
 *
 * Why not the Map itself: when V8 grows or shrinks a Map's hash table it keeps the old table, with
 * every entry it held then, linked to the new one (for iterators still walking it). A table that
 * once reached the old generation keeps every later table of that Map alive, and so everything they
 * held, through each scavenge until the next mark-compact. A Map that takes a run's objects at
 * 1,000 alerts/s and drops them a few milliseconds later thus got most of them promoted: in a
 * 10 s loop of 40 ms lifetimes, 12.0 MB promoted against 3.0 MB with no Map
 * (docs/performance.md, "Maps that let go"). Here the old tables keep only emptied cells.
 * Keys are kept like values, so they should be ids, not the objects.
 */
export class InFlight<K, V extends object> {
  private readonly cells = new Map<K, { value: V | undefined }>();

  get size(): number {
    return this.cells.size;
  }

  set(key: K, value: V): void {
    const cell = this.cells.get(key);
    if (cell) cell.value = value;
    else this.cells.set(key, { value });
  }

  get(key: K): V | undefined {
    return this.cells.get(key)?.value;
  }

  delete(key: K): boolean {
    const cell = this.cells.get(key);
    if (!cell) return false;
    cell.value = undefined;
    return this.cells.delete(key);
  }

  /** A copy, so that deleting while walking it is safe. */
  values(): V[] {
    const values: V[] = [];
    for (const { value } of this.cells.values()) if (value !== undefined) values.push(value);
    return values;
  }

  clear(): void {
    for (const cell of this.cells.values()) cell.value = undefined;
    this.cells.clear();
  }
}
