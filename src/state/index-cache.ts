import { readFile } from 'node:fs/promises';
import { SegmentIndex } from './segment-index.js';

/**
 * Sealed segments' indexes in memory, least recently used dropped first once they hold more than
 * `limitBytes`, so paging through the whole journal keeps a few indexes, never all of them.
 */
export class IndexCache {
  private readonly loaded = new Map<string, SegmentIndex>();
  private readonly loading = new Map<string, Promise<SegmentIndex | null>>();
  private bytes = 0;

  constructor(private readonly limitBytes: number) {}

  /** The index in `file`; null when the file is gone (retention removed the segment meanwhile). */
  load(file: string): Promise<SegmentIndex | null> {
    const cached = this.loaded.get(file);
    if (cached) {
      this.loaded.delete(file);
      this.loaded.set(file, cached);
      return Promise.resolve(cached);
    }
    let pending = this.loading.get(file);
    if (!pending) {
      pending = this.read(file).finally(() => this.loading.delete(file));
      this.loading.set(file, pending);
    }
    return pending;
  }

  private async read(file: string): Promise<SegmentIndex | null> {
    let buffer: Buffer;
    try {
      buffer = await readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    const index = new SegmentIndex(buffer, file);
    this.loaded.set(file, index);
    this.bytes += index.byteLength;
    for (const [oldest, entry] of this.loaded) {
      if (this.bytes <= this.limitBytes || oldest === file) break;
      this.loaded.delete(oldest);
      this.bytes -= entry.byteLength;
    }
    return index;
  }

  forget(file: string): void {
    const entry = this.loaded.get(file);
    if (!entry) return;
    this.loaded.delete(file);
    this.bytes -= entry.byteLength;
  }
}
