/**
 * Alert claims in one Buffer, off the JS heap: tens of thousands of claims as JS strings and map
 * entries cost tens of MB of heap (and make V8 grow its young generation while they load); here
 * each costs one 42-byte slot. Open addressing with linear probing on the claim key (a 16-byte
 * hash, 22 characters base64url), the run id as 16 bytes when it is a UUID (any other id, from
 * journals and tests before them, is kept in a small map), and the claim time.
 */
const SLOT = 42;
// Slots in use (and deleted) stay under this share of the table, so probes stay short.
const LOAD = 0.7;
const EMPTY = 0;
const USED = 1;
const DELETED = 2;
const KEY_AT = 1;
const RUN_AT = 17;
const TIME_AT = 33;
const UUID_FLAG_AT = 41;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function uuidBytes(id: string): Buffer | null {
  return UUID.test(id) ? Buffer.from(id.replaceAll('-', ''), 'hex') : null;
}

function uuidText(bytes: Buffer): string {
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export interface Claim {
  readonly key: string;
  readonly runId: string;
  readonly at: number;
}

export class ClaimTable {
  private slots = Buffer.alloc(SLOT * 1024);
  private slotCount = 1024;
  private used = 0;
  private deleted = 0;
  private readonly otherIds = new Map<string, string>();

  get size(): number {
    return this.used;
  }

  /** Makes room for `count` claims at once (start-up knows about how many it will load). */
  reserve(count: number): void {
    if (count > this.slotCount * LOAD) this.resize(Math.ceil(count / LOAD));
  }

  /** The slot of `key`, or of the first free place for it. */
  private find(key: Buffer): { slot: number; found: boolean } {
    let free = -1;
    for (let slot = key.readUInt32LE(0) % this.slotCount; ; slot = (slot + 1) % this.slotCount) {
      const at = slot * SLOT;
      const state = this.slots[at];
      if (state === EMPTY) return { slot: free === -1 ? slot : free, found: false };
      if (state === DELETED) {
        if (free === -1) free = slot;
      } else if (this.slots.compare(key, 0, 16, at + KEY_AT, at + KEY_AT + 16) === 0) {
        return { slot, found: true };
      }
    }
  }

  get(key: string): string | undefined {
    const { slot, found } = this.find(Buffer.from(key, 'base64url'));
    return found ? this.runIdAt(slot, key) : undefined;
  }

  private runIdAt(slot: number, key: string): string {
    const at = slot * SLOT;
    return this.slots[at + UUID_FLAG_AT] === 1 ? uuidText(this.slots.subarray(at + RUN_AT, at + RUN_AT + 16)) : this.otherIds.get(key) ?? '';
  }

  /** Adds the claim unless the key is claimed already. */
  add(key: string, runId: string, at: number): void {
    if (this.used + this.deleted + 1 > this.slotCount * LOAD) this.resize(this.used * 2 > this.slotCount * LOAD ? this.slotCount * 2 : this.slotCount);
    const hash = Buffer.from(key, 'base64url');
    const { slot, found } = this.find(hash);
    if (found) return;
    const offset = slot * SLOT;
    if (this.slots[offset] === DELETED) this.deleted -= 1;
    this.slots[offset] = USED;
    hash.copy(this.slots, offset + KEY_AT, 0, 16);
    const bytes = uuidBytes(runId);
    if (bytes) bytes.copy(this.slots, offset + RUN_AT);
    else this.otherIds.set(key, runId);
    this.slots[offset + UUID_FLAG_AT] = bytes ? 1 : 0;
    this.slots.writeDoubleLE(at, offset + TIME_AT);
    this.used += 1;
  }

  delete(key: string): void {
    const { slot, found } = this.find(Buffer.from(key, 'base64url'));
    if (found) this.drop(slot * SLOT);
  }

  /** Every claim (for a snapshot), oldest first. */
  list(): Claim[] {
    const claims: Claim[] = [];
    for (let slot = 0; slot < this.slotCount; slot += 1) {
      const at = slot * SLOT;
      if (this.slots[at] !== USED) continue;
      const key = this.slots.toString('base64url', at + KEY_AT, at + KEY_AT + 16);
      claims.push({ key, runId: this.runIdAt(slot, key), at: this.slots.readDoubleLE(at + TIME_AT) });
    }
    return claims.sort((a, b) => a.at - b.at);
  }

  /**
   * Drops claims made before `before`, then the oldest until at most `limit` are left. Two passes
   * over the slots and no allocation per claim: at the guards' limit (50,000 claims) the sort and a
   * lookup per dropped claim held the event loop 19–30 ms, once every 5,000 new claims in an alert
   * storm (docs/performance.md, "The claim table's stalls").
   */
  prune(before: number, limit: number): void {
    const times = new Float64Array(this.used);
    let count = 0;
    for (let at = 0; at < this.slots.length; at += SLOT) if (this.slots[at] === USED) times[count++] = this.slots.readDoubleLE(at + TIME_AT);
    const excess = count - limit;
    const cut = excess > 0 ? Math.max(before, kthSmallest(times.subarray(0, count), excess - 1)) : before;
    for (let at = 0; at < this.slots.length; at += SLOT) {
      if (this.slots[at] !== USED) continue;
      const time = this.slots.readDoubleLE(at + TIME_AT);
      if (time < before || (excess > 0 && time <= cut)) this.drop(at);
    }
  }

  /** Deletes the claim in the slot at byte `at`. */
  private drop(at: number): void {
    this.slots[at] = DELETED;
    if (this.slots[at + UUID_FLAG_AT] !== 1) this.otherIds.delete(this.slots.toString('base64url', at + KEY_AT, at + KEY_AT + 16));
    this.used -= 1;
    this.deleted += 1;
  }

  /**
   * Moves every claim into a table of `slotCount` slots. The keys are distinct and the new table
   * has no deleted slots, so each goes to the first empty slot from its hash without comparing
   * keys. Still a whole-table step: 9 ms at the 45,875 claims where the table doubles to 131,072
   * slots (12–15 ms with a lookup per claim; bench/claim-table.ts), most of it touching the new
   * table's 5.5 MB. The table never shrinks, so it doubles there once; a rebuild at the same size
   * (when deleted slots fill it) costs about as much.
   */
  private resize(slotCount: number): void {
    const old = this.slots;
    const slots = Buffer.alloc(slotCount * SLOT);
    for (let offset = 0; offset < old.length; offset += SLOT) {
      if (old[offset] !== USED) continue;
      let slot = old.readUInt32LE(offset + KEY_AT) % slotCount;
      while (slots[slot * SLOT] !== EMPTY) slot = (slot + 1) % slotCount;
      old.copy(slots, slot * SLOT, offset, offset + SLOT);
    }
    this.slots = slots;
    this.slotCount = slotCount;
    this.deleted = 0;
  }
}

/** The k-th smallest of `values` (0-based), reordering them in place: quickselect, no sort. */
export function kthSmallest(values: Float64Array, k: number): number {
  let low = 0;
  let high = values.length - 1;
  while (low < high) {
    const pivot = values[(low + high) >>> 1] ?? 0;
    let left = low;
    let right = high;
    while (left <= right) {
      while ((values[left] ?? 0) < pivot) left += 1;
      while ((values[right] ?? 0) > pivot) right -= 1;
      if (left <= right) {
        const swap = values[left] ?? 0;
        values[left] = values[right] ?? 0;
        values[right] = swap;
        left += 1;
        right -= 1;
      }
    }
    if (k <= right) high = right;
    else if (k >= left) low = left;
    else return values[k] ?? 0;
  }
  return values[k] ?? 0;
}
