import { open, readdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { IndexCache } from './index-cache.js';
import type { Located } from './journal-page.js';
import { compareKeys, type RunKey } from './run-key.js';
import { readIndexHeader, type IndexHeader } from './segment-index.js';
import { scanLines } from './segment-scan.js';
import { TailIndex } from './tail-index.js';

const SEGMENT = /^runs-(\d{8})\.(jsonl|idx)$/;

export function segmentName(seq: number, kind: 'jsonl' | 'idx'): string {
  return `runs-${String(seq).padStart(8, '0')}.${kind}`;
}

/** A segment whose index is on disk. */
export interface Sealed {
  readonly seq: number;
  readonly file: string;
  readonly indexFile: string;
  readonly header: IndexHeader;
}

/** A segment indexed in memory: the one being written, and rotated ones within their grace. */
export interface Tail {
  readonly seq: number;
  readonly file: string;
  readonly index: TailIndex;
  /** When this process made the segment; null for one found on disk, whose age counts from its first line. */
  readonly createdAt: number | null;
  /** When a newer segment was first seen: the grace before sealing counts from here. */
  rotatedAt: number | null;
  reader: FileHandle | null;
}

/**
 * The journal's segments as last seen on disk, oldest first, and where a run's last line is. The
 * directory is listed again only when it changed (a segment created, sealed or removed, by this
 * process or another); the tails are read on from where they were.
 */
export class SegmentSet {
  sealed: Sealed[] = [];
  tails: Tail[] = [];
  private dirStamp: number | null = null;
  /** When refresh() last started (performance.now()). */
  private lookedAt = Number.NEGATIVE_INFINITY;

  constructor(readonly dir: string, private readonly now: () => number, readonly cache: IndexCache) {}

  async names(): Promise<string[]> {
    try {
      return await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  isSegment(name: string): boolean {
    return SEGMENT.test(name);
  }

  file(seq: number, kind: 'jsonl' | 'idx'): string {
    return join(this.dir, segmentName(seq, kind));
  }

  /** The number the next segment gets. */
  nextSeq(): number {
    return Math.max(0, ...this.sealed.map((segment) => segment.seq), ...this.tails.map((tail) => tail.seq)) + 1;
  }

  /**
   * Reads what other processes (and this one) appended since the last look. Every write batch
   * starts with this, so the directory and the tails are looked at side by side: one wait for
   * the thread pool instead of one per file.
   */
  async refresh(): Promise<void> {
    this.lookedAt = performance.now();
    const tails = this.tails;
    const [stamp, sizes] = await Promise.all([this.stamp(), Promise.all(tails.map((tail) => this.sizeOfTail(tail)))]);
    if (stamp !== this.dirStamp) {
      this.dirStamp = stamp;
      await this.relist(false);
      for (const tail of this.tails) await this.readTail(tail);
      return;
    }
    for (const [at, tail] of tails.entries()) await this.readTail(tail, sizes[at]);
  }

  /** Milliseconds since refresh() last started. */
  sinceLook(): number {
    return performance.now() - this.lookedAt;
  }

  private async stamp(): Promise<number | null> {
    try {
      return (await stat(this.dir)).mtimeMs;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  /** The tail's size now, through its reader (opened on first use); null when the file is gone. */
  private async sizeOfTail(tail: Tail): Promise<number | null> {
    try {
      tail.reader ??= await open(tail.file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    return (await tail.reader.stat()).size;
  }

  /** Lists the segments; `starting`, a sealed segment that grew after its index was written is indexed again. */
  async relist(starting: boolean): Promise<void> {
    const segments = new Set<number>();
    const indexed = new Set<number>();
    for (const name of await this.names()) {
      const match = SEGMENT.exec(name);
      if (!match) continue;
      (match[2] === 'jsonl' ? segments : indexed).add(Number(match[1]));
    }
    const newest = Math.max(0, ...segments);
    const ordered = [...segments].sort((a, b) => a - b);
    // The headers are read side by side: start-up reads one per sealed segment.
    const headers = await Promise.all(ordered.map(async (seq) => {
      const file = this.file(seq, 'jsonl');
      const indexFile = this.file(seq, 'idx');
      const known = this.sealed.find((segment) => segment.seq === seq);
      if (known || !indexed.has(seq)) return known ?? null;
      const header = await readIndexHeader(indexFile).catch(() => null);
      // Lines appended after the index was written (a writer that missed the rotation): index it again.
      if (header && starting && await sizeOf(file) > header.bytes) {
        await unlink(indexFile).catch(ignoreMissing);
        return null;
      }
      return header ? { seq, file, indexFile, header } : null;
    }));
    const sealed: Sealed[] = [];
    const tails: Tail[] = [];
    for (const [at, seq] of ordered.entries()) {
      const segment = headers[at];
      if (segment) {
        sealed.push(segment);
        continue;
      }
      const tail = this.tails.find((known) => known.seq === seq) ?? { seq, file: this.file(seq, 'jsonl'), index: new TailIndex(), createdAt: null, rotatedAt: null, reader: null };
      if (seq < newest) tail.rotatedAt ??= this.now();
      tails.push(tail);
    }
    for (const gone of this.sealed.filter((segment) => !sealed.includes(segment))) this.cache.forget(gone.indexFile);
    for (const gone of this.tails.filter((tail) => !tails.includes(tail))) await gone.reader?.close();
    this.sealed = sealed;
    this.tails = tails;
  }

  /** Indexes the tail's new lines: this process's own from memory when they are all that is new, else read from the file. */
  async readTail(tail: Tail, knownSize?: number | null): Promise<void> {
    const size = knownSize === undefined ? await this.sizeOfTail(tail) : knownSize;
    if (size === null || !tail.reader || tail.index.takeWritten(size) || size <= tail.index.bytes) return;
    const from = tail.index.bytes;
    tail.index.bytes = await scanLines(tail.reader, from, (line, offset) => tail.index.addLine(line, offset), { expectedBytes: size - from });
  }

  /** Every segment, newest first. */
  private newestFirst(): ({ tail: Tail } | { sealed: Sealed })[] {
    const all = [...this.tails.map((tail) => ({ seq: tail.seq, segment: { tail } })), ...this.sealed.map((sealed) => ({ seq: sealed.seq, segment: { sealed } }))];
    return all.sort((a, b) => b.seq - a.seq).map((item) => item.segment);
  }

  /** The run's last line: the newest segment holding the run has it. */
  async locate(key: RunKey): Promise<Located | undefined> {
    for (const segment of this.newestFirst()) {
      if ('tail' in segment) {
        const entry = segment.tail.index.get(key.id);
        if (entry) return { entry, file: segment.tail.file };
        continue;
      }
      const { minKey, maxKey } = segment.sealed.header;
      if (!minKey || !maxKey || compareKeys(key, minKey) < 0 || compareKeys(key, maxKey) > 0) continue;
      const entry = await this.cache.with(segment.sealed.indexFile, (index) => index?.find(key));
      if (entry) return { entry, file: segment.sealed.file };
    }
    return undefined;
  }

  /** For ids from before time-ordered ids: only segments that hold such ids are searched. */
  async locateId(id: string): Promise<Located | undefined> {
    for (const segment of this.newestFirst()) {
      if ('tail' in segment) {
        const entry = segment.tail.index.get(id);
        if (entry) return { entry, file: segment.tail.file };
        continue;
      }
      if (!segment.sealed.header.legacyIds) continue;
      const entry = await this.cache.with(segment.sealed.indexFile, (index) => index?.findId(id));
      if (entry) return { entry, file: segment.sealed.file };
    }
    return undefined;
  }

  /** The time of the newest line in any segment (null when there is none). */
  newestLineMs(): number | null {
    const times = [...this.sealed.map((segment) => segment.header.lastLineMs), ...this.tails.map((tail) => tail.index.lastLineMs)].filter((ms) => ms > 0);
    return times.length > 0 ? Math.max(...times) : null;
  }

  /** Removes sealed segments whose newest line is older than `horizon`, never the newest sealed one. */
  async removeExpired(horizon: number): Promise<void> {
    const expired = this.sealed.slice(0, -1).filter((segment) => segment.header.lastLineMs < horizon);
    for (const segment of expired) {
      // The lines first: an index without its segment is ignored, a segment without its index would be read again.
      await unlink(segment.file).catch(ignoreMissing);
      await unlink(segment.indexFile).catch(ignoreMissing);
      this.cache.forget(segment.indexFile);
    }
    this.sealed = this.sealed.filter((segment) => !expired.includes(segment));
  }

  async closeReaders(): Promise<void> {
    for (const tail of this.tails) await tail.reader?.close();
    for (const tail of this.tails) tail.reader = null;
  }
}

async function sizeOf(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}
