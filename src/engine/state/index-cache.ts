import { open } from 'node:fs/promises';
import { SegmentIndex } from './segment-index.js';

interface Slot {
  buffer: Buffer;
  file: string | null;
  index: SegmentIndex | null;
  loading: Promise<void> | null;
  pins: number;
  used: number;
}

// Buffers grow in steps, so indexes of slightly different sizes reuse the same one.
const STEP_BYTES = 256 * 1024;

/**
 * Sealed segments' indexes in memory: a few slots, each a buffer read into again and again, least
 * recently used first. Paging through the whole journal reads every index in turn; reusing the
 * buffers (instead of a new one per index) keeps the process's memory from growing with it. An
 * index is pinned while it is used (a page may span awaits), and a pinned slot is never reused.
 */
export class IndexCache {
  private readonly slots: Slot[] = [];
  private clock = 0;

  constructor(private readonly slotCount: number) {}

  /** Runs `use` with the index in `file` (null when the file is gone: retention removed the segment meanwhile). */
  async with<T>(file: string, use: (index: SegmentIndex | null) => T | Promise<T>): Promise<T> {
    const slot = await this.pin(file);
    try {
      return await use(slot.index);
    } finally {
      this.unpin(slot);
    }
  }

  /** Holds the index in `file` until `unpin`. */
  async pin(file: string): Promise<Slot> {
    this.clock += 1;
    let slot = this.slots.find((candidate) => candidate.file === file);
    if (!slot) {
      slot = this.freeSlot();
      slot.file = file;
      slot.index = null;
      slot.loading = this.read(slot, file);
    }
    slot.pins += 1;
    slot.used = this.clock;
    try {
      await slot.loading;
    } catch (err) {
      this.unpin(slot);
      if (slot.file === file) slot.file = null;
      throw err;
    }
    return slot;
  }

  unpin(slot: Slot): void {
    slot.pins -= 1;
  }

  private freeSlot(): Slot {
    const unpinned = this.slots.filter((slot) => slot.pins === 0).sort((a, b) => a.used - b.used)[0];
    if (unpinned && this.slots.length >= this.slotCount) return unpinned;
    const slot: Slot = { buffer: Buffer.alloc(0), file: null, index: null, loading: null, pins: 0, used: 0 };
    // Every slot pinned (many pages read at once): this one is used once and dropped.
    if (this.slots.length < this.slotCount) this.slots.push(slot);
    return slot;
  }

  private async read(slot: Slot, file: string): Promise<void> {
    let handle;
    try {
      handle = await open(file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    try {
      const { size } = await handle.stat();
      if (slot.buffer.length < size) slot.buffer = Buffer.allocUnsafe(Math.ceil(size / STEP_BYTES) * STEP_BYTES);
      const { bytesRead } = await handle.read(slot.buffer, 0, size, 0);
      slot.index = new SegmentIndex(slot.buffer.subarray(0, bytesRead), file);
    } finally {
      await handle.close();
    }
  }

  /** Drops a removed segment's index, unless a page still reads it. */
  forget(file: string): void {
    for (const slot of this.slots) {
      if (slot.file !== file || slot.pins > 0) continue;
      slot.file = null;
      slot.index = null;
    }
  }
}
