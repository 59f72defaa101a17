import { mkdir, open, readdir, rename, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { isFinished, runRecordSchema } from '../journal.js';
import type { RunRecord } from '../journal.js';
import { IndexCache } from './index-cache.js';
import { readLegacyJournal } from './journal-legacy.js';
import { collectPage, parseRecord, readLines, sealedWalker, tailWalker, type Located, type PageSource } from './journal-page.js';
import { LineWriter } from './line-writer.js';
import { interruptedRecord, otherProcessAlive } from './owner.js';
import { idTime } from './run-id.js';
import { compareKeys, decodeCursor, encodeCursor, type RunKey } from './run-key.js';
import { encodeIndex, mayMatch, readIndexHeader, summarise, type IndexHeader } from './segment-index.js';
import { scanLines } from './segment-scan.js';
import type { RunFilter, RunPage, RunPageJson } from './store.js';
import { TailIndex } from './tail-index.js';

export interface FileJournalOptions {
  /** `STATE_DIR/journal`. */
  readonly dir: string;
  readonly now: () => number;
  /** Sealed segments whose newest line is older than this are removed. */
  readonly retentionMs: number;
  /** A segment is rotated once it holds this many bytes, this many runs, or is this old. */
  readonly segmentBytes: number;
  readonly segmentRuns: number;
  readonly segmentAgeMs: number;
  /** How long a rotated segment stays in memory before its index is written (late appends). */
  readonly sealGraceMs: number;
  /** How many sealed segments' indexes stay in memory (each up to 64 bytes a run). */
  readonly indexSlots: number;
}

export type JournalLimits = Pick<FileJournalOptions, 'segmentBytes' | 'segmentRuns' | 'segmentAgeMs' | 'sealGraceMs' | 'indexSlots'>;

export const JOURNAL_LIMITS: JournalLimits = {
  segmentBytes: 64 * 1024 * 1024,
  segmentRuns: 20_000,
  segmentAgeMs: 86_400_000,
  sealGraceMs: 60_000,
  indexSlots: 3,
};

/** Lines past this many bytes wait for the next page. */
const PAGE_BYTES = 4 * 1024 * 1024;
// Pages read at once; more wait their turn, so concurrent GET /runs cannot pile up pages in memory.
const CONCURRENT_PAGES = 4;
const LEGACY_FILE = 'runs.jsonl';
const SEGMENT = /^runs-(\d{8})\.(jsonl|idx)$/;

export function segmentName(seq: number, kind: 'jsonl' | 'idx'): string {
  return `runs-${String(seq).padStart(8, '0')}.${kind}`;
}

interface Sealed {
  readonly seq: number;
  readonly file: string;
  readonly indexFile: string;
  readonly header: IndexHeader;
}

interface Tail {
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
 * The file store's run journal: append-only JSON-lines segments under `STATE_DIR/journal`
 * (`runs-00000001.jsonl`, ...), rotated by size, run count and age. A rotated segment gets an
 * on-disk index once the grace for late appends has passed; until then, and for the segment
 * being written, the index is in memory (TailIndex). Reads never scan the journal: GET /runs
 * walks indexes newest first, GET /runs/:id finds the segment from the id's time. Several
 * processes (a server and `upkeep run`) may append at once: each batch is one append of whole
 * lines, every process follows the newest segment, and each reads the others' lines as it
 * catches up with the files before answering.
 */
export class FileJournal {
  private sealed: Sealed[] = [];
  private tails: Tail[] = [];
  private dirStamp: number | null = null;
  private appending: { seq: number; handle: FileHandle } | null = null;
  private lock: Promise<unknown> = Promise.resolve();
  private queuedRefresh: Promise<void> | null = null;
  private readonly cache: IndexCache;
  private readonly writer: LineWriter;
  private legacy: string | null = null;
  private readersActive = 0;
  private readonly readersWaiting: (() => void)[] = [];
  /** Lines that could not be read at open (a torn last line after a crash), per file. */
  readonly skipped: { file: string; lines: number }[] = [];

  private constructor(private readonly options: FileJournalOptions) {
    this.cache = new IndexCache(options.indexSlots);
    this.writer = new LineWriter({
      write: (batch) => this.exclusive(async () => {
        await this.refresh();
        await this.rotateIfDue();
        const handle = await this.appendHandle();
        const { bytesWritten } = await handle.write(batch);
        if (bytesWritten < Buffer.byteLength(batch)) {
          // A full disk: the next batch opens the file again and starts on a line of its own.
          await this.appending?.handle.close();
          this.appending = null;
          throw new Error(`the journal took ${bytesWritten} of ${Buffer.byteLength(batch)} bytes (is the disk full?)`);
        }
      }),
      sync: async () => { await this.appending?.handle.datasync(); },
      close: async () => {
        await this.appending?.handle.close();
        this.appending = null;
      },
    });
  }

  /** Lists the segments, reads the unsealed ones into memory and re-indexes any that grew after sealing. Creates nothing. */
  static async open(options: FileJournalOptions): Promise<FileJournal> {
    const journal = new FileJournal(options);
    const names = await journal.names();
    if (names.includes(LEGACY_FILE)) {
      // A journal from before segments; any segments beside it are from a migration that did not finish.
      journal.legacy = join(options.dir, LEGACY_FILE);
      for (const name of names) if (SEGMENT.test(name)) await unlink(join(options.dir, name));
    }
    await journal.exclusive(async () => {
      await journal.relist(true);
      for (const tail of journal.tails) await terminateTornLine(tail.file);
      await journal.refresh();
    });
    for (const tail of journal.tails) if (tail.index.skippedLines > 0) journal.skipped.push({ file: tail.file, lines: tail.index.skippedLines });
    return journal;
  }

  private async names(): Promise<string[]> {
    try {
      return await readdir(this.options.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  /** One at a time: listing, reading tails, rotating, sealing and removing segments. */
  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.lock.then(work, work);
    this.lock = result.catch(() => undefined);
    return result;
  }

  /** Reads what other processes (and this one) appended since the last look. */
  private catchUp(): Promise<void> {
    this.queuedRefresh ??= this.exclusive(async () => {
      this.queuedRefresh = null;
      await this.refresh();
    });
    return this.queuedRefresh;
  }

  private async refresh(): Promise<void> {
    let stamp: number | null = null;
    try {
      stamp = (await stat(this.options.dir)).mtimeMs;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    // A segment was created, sealed or removed (by this process or another) when the directory changed.
    if (stamp !== this.dirStamp) {
      this.dirStamp = stamp;
      await this.relist(false);
    }
    for (const tail of this.tails) await this.readTail(tail);
  }

  private async relist(starting: boolean): Promise<void> {
    const names = await this.names();
    const segments = new Set<number>();
    const indexed = new Set<number>();
    for (const name of names) {
      const match = SEGMENT.exec(name);
      if (!match) continue;
      (match[2] === 'jsonl' ? segments : indexed).add(Number(match[1]));
    }
    const newest = Math.max(0, ...segments);
    const ordered = [...segments].sort((a, b) => a - b);
    // The headers are read side by side: start-up reads one per sealed segment.
    const headers = await Promise.all(ordered.map(async (seq) => {
      const file = join(this.options.dir, segmentName(seq, 'jsonl'));
      const indexFile = join(this.options.dir, segmentName(seq, 'idx'));
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
      const file = join(this.options.dir, segmentName(seq, 'jsonl'));
      const segment = headers[at];
      if (segment) {
        sealed.push(segment);
        continue;
      }
      const tail = this.tails.find((segment) => segment.seq === seq) ?? { seq, file, index: new TailIndex(), createdAt: null, rotatedAt: null, reader: null };
      if (seq < newest) tail.rotatedAt ??= this.options.now();
      tails.push(tail);
    }
    for (const gone of this.sealed.filter((segment) => !sealed.includes(segment))) this.cache.forget(gone.indexFile);
    for (const gone of this.tails.filter((tail) => !tails.includes(tail))) await gone.reader?.close();
    this.sealed = sealed;
    this.tails = tails;
  }

  private async readTail(tail: Tail): Promise<void> {
    try {
      tail.reader ??= await open(tail.file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const { size } = await tail.reader.stat();
    if (size > tail.index.bytes) tail.index.bytes = await scanLines(tail.reader, tail.index.bytes, (line, offset) => tail.index.addLine(line, offset));
  }

  private async rotateIfDue(): Promise<void> {
    const now = this.options.now();
    const active = this.tails.at(-1);
    const born = active?.createdAt ?? active?.index.firstLineMs ?? now;
    const full = active !== undefined && active.index.bytes > 0 && (active.index.bytes >= this.options.segmentBytes
      || active.index.runs >= this.options.segmentRuns || now - born >= this.options.segmentAgeMs);
    if (!active || full) {
      const seq = Math.max(0, ...this.sealed.map((segment) => segment.seq), ...this.tails.map((tail) => tail.seq)) + 1;
      if (active) active.rotatedAt = now;
      this.tails.push({ seq, file: join(this.options.dir, segmentName(seq, 'jsonl')), index: new TailIndex(), createdAt: now, rotatedAt: null, reader: null });
      // Created now, so other processes follow it from their next append.
      await this.appendHandle();
    }
    for (const tail of this.tails.slice(0, -1)) {
      if (tail.rotatedAt !== null && now - tail.rotatedAt >= this.options.sealGraceMs) await this.seal(tail);
    }
  }

  private async appendHandle(): Promise<FileHandle> {
    const active = this.tails.at(-1);
    if (!active) throw new Error('no journal segment to append to');
    if (this.appending?.seq === active.seq) return this.appending.handle;
    await this.appending?.handle.close();
    this.appending = null;
    await mkdir(this.options.dir, { recursive: true });
    const handle = await open(active.file, 'a+');
    await endWithNewline(handle);
    this.appending = { seq: active.seq, handle };
    return handle;
  }

  /** Writes the segment's index, so it leaves memory; runs still unfinished are carried in the header. */
  private async seal(tail: Tail): Promise<void> {
    await this.readTail(tail);
    const before = this.sealed.filter((segment) => segment.seq < tail.seq).at(-1);
    const candidates = new Map<string, RunKey>();
    for (const key of before?.header.open ?? []) candidates.set(key.id, key);
    for (const entry of tail.index.unfinished()) candidates.set(entry.id, { time: entry.time, id: entry.id });
    const open: RunKey[] = [];
    for (const key of candidates.values()) {
      const latest = await this.locate(key);
      if (latest && !isFinished(latest.entry.status)) open.push(key);
    }
    const header: IndexHeader = {
      version: 1, bytes: tail.index.bytes, lastLineMs: tail.index.lastLineMs, open, skippedLines: tail.index.skippedLines,
      ...summarise(tail.index.sorted),
    };
    const indexFile = join(this.options.dir, segmentName(tail.seq, 'idx'));
    await writeFile(`${indexFile}.${process.pid}.tmp`, encodeIndex(header, tail.index.sorted));
    await rename(`${indexFile}.${process.pid}.tmp`, indexFile);
    await tail.reader?.close();
    this.tails = this.tails.filter((other) => other !== tail);
    this.sealed = [...this.sealed, { seq: tail.seq, file: tail.file, indexFile, header }].sort((a, b) => a.seq - b.seq);
  }

  /** Every segment, newest first. */
  private newestFirst(): ({ tail: Tail } | { sealed: Sealed })[] {
    const all = [...this.tails.map((tail) => ({ seq: tail.seq, segment: { tail } })), ...this.sealed.map((sealed) => ({ seq: sealed.seq, segment: { sealed } }))];
    return all.sort((a, b) => b.seq - a.seq).map((item) => item.segment);
  }

  /** The run's last line: the newest segment holding the run has it. */
  private async locate(key: RunKey): Promise<Located | undefined> {
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
  private async locateId(id: string): Promise<Located | undefined> {
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

  append(record: RunRecord): { written: Promise<void>; durable: Promise<void> } {
    return this.writer.enqueue(JSON.stringify(record));
  }

  async get(id: string): Promise<RunRecord | undefined> {
    await this.catchUp();
    const time = idTime(id);
    const located = time === null ? await this.locateId(id) : await this.locate({ time, id });
    if (!located) return undefined;
    const [line] = await readLines([located]);
    return parseRecord(line, id);
  }

  async list(filter: RunFilter, cursor: string | null, limit: number): Promise<RunPage> {
    const page = await this.listJson(filter, cursor, limit);
    return { runs: page.runs.map((line) => runRecordSchema.parse(JSON.parse(line))), next: page.next };
  }

  /**
   * A page as the records' JSON texts, each checked against the record schema and then passed
   * on as it is: a page never holds more than its lines, so a reply costs little memory.
   */
  async listJson(filter: RunFilter, cursor: string | null, limit: number): Promise<RunPageJson> {
    const before = cursor === null ? null : decodeCursor(cursor);
    await this.catchUp();
    await this.readerTurn();
    try {
      const { picked, next } = await collectPage(this.pageSources(filter), filter, before, { runs: limit, bytes: PAGE_BYTES }, async (located) => {
        const latest = await this.locate(located.entry);
        return latest?.file === located.file && latest.entry.offset === located.entry.offset;
      });
      const lines = await readLines(picked);
      const runs: string[] = [];
      lines.forEach((line, at) => {
        if (line !== undefined && parseRecord(line, picked[at]?.entry.id ?? '')) runs.push(line);
      });
      return { runs, next: next ? encodeCursor(next) : null };
    } finally {
      this.readerDone();
    }
  }

  private async readerTurn(): Promise<void> {
    if (this.readersActive >= CONCURRENT_PAGES) await new Promise<void>((resolve) => this.readersWaiting.push(resolve));
    this.readersActive += 1;
  }

  private readerDone(): void {
    this.readersActive -= 1;
    this.readersWaiting.shift()?.();
  }

  /** The segments that can hold runs matching the filter: one where no (status, trigger, remediation) matches is skipped. */
  private pageSources(filter: RunFilter): PageSource[] {
    const sources: PageSource[] = [];
    for (const segment of this.sealed) {
      const { header } = segment;
      if (!header.minKey || !header.maxKey || !mayMatch(header.combos, filter)) continue;
      sources.push({
        minKey: header.minKey, maxKey: header.maxKey,
        walk: async (before, walkFilter) => {
          // Held until the page is done: the walker reads the index between awaits.
          const slot = await this.cache.pin(segment.indexFile);
          const release = () => this.cache.unpin(slot);
          if (slot.index) return sealedWalker(slot.index, segment.file, before, walkFilter, release);
          release();
          return tailWalker(new TailIndex(), segment.file, null, walkFilter);
        },
      });
    }
    for (const tail of this.tails) {
      const first = tail.index.sorted[0];
      const last = tail.index.sorted.at(-1);
      if (!first || !last || !mayMatch(tail.index.combos.masks(), filter)) continue;
      sources.push({ minKey: first, maxKey: last, walk: async (before, walkFilter) => tailWalker(tail.index, tail.file, before, walkFilter) });
    }
    return sources;
  }

  /** Marks runs that a dead process left queued or running as interrupted; returns them. */
  async recoverInterrupted(now: Date): Promise<RunRecord[]> {
    await this.catchUp();
    const candidates = new Map<string, RunKey>();
    for (const key of this.sealed.at(-1)?.header.open ?? []) candidates.set(key.id, key);
    for (const tail of this.tails) for (const entry of tail.index.unfinished()) candidates.set(entry.id, entry);
    const interrupted: RunRecord[] = [];
    for (const key of candidates.values()) {
      const located = await this.locate(key);
      if (!located || isFinished(located.entry.status)) continue;
      const [line] = await readLines([located]);
      const record = parseRecord(line, key.id);
      if (!record || otherProcessAlive(record.host, record.pid)) continue;
      interrupted.push(interruptedRecord(record, now));
    }
    await Promise.all(interrupted.map((record) => this.append(record).durable));
    return interrupted;
  }

  /** Rotates an old segment, seals rotated ones, and removes sealed segments past the retention (never the newest). */
  maintain(): Promise<void> {
    return this.exclusive(async () => {
      await this.refresh();
      const active = this.tails.at(-1);
      if (active && active.index.bytes > 0) await this.rotateIfDue();
      const horizon = this.options.now() - this.options.retentionMs;
      const expired = this.sealed.slice(0, -1).filter((segment) => segment.header.lastLineMs < horizon);
      for (const segment of expired) {
        // The lines first: an index without its segment is ignored, a segment without its index would be read again.
        await unlink(segment.file).catch(ignoreMissing);
        await unlink(segment.indexFile).catch(ignoreMissing);
        this.cache.forget(segment.indexFile);
      }
      this.sealed = this.sealed.filter((segment) => !expired.includes(segment));
    });
  }

  /**
   * A journal from before segments (`runs.jsonl`), once: each record is handed to the caller
   * (which rebuilds the guards' memory from them) and appended to the segments.
   */
  async *legacyRecords(): AsyncGenerator<RunRecord> {
    const file = this.legacy;
    if (!file) return;
    this.legacy = null;
    yield* readLegacyJournal(file, (lines) => this.writer.enqueue(lines).durable, (lines) => { this.skipped.push({ file, lines }); });
  }

  async close(): Promise<void> {
    await this.writer.close();
    await this.exclusive(async () => {
      for (const tail of this.tails) await tail.reader?.close();
      for (const tail of this.tails) tail.reader = null;
    });
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

/**
 * A crash can leave half a line at the end; the next line must not be glued to it. The tab
 * also means a torn line never ends with "}", so the index never takes it for a whole record.
 * Another process mid-write is harmless: appends are atomic, so this lands after its line.
 */
async function endWithNewline(handle: FileHandle): Promise<void> {
  const { size } = await handle.stat();
  if (size === 0) return;
  const last = Buffer.alloc(1);
  await handle.read(last, 0, 1, size - 1);
  if (last[0] !== 0x0a) await handle.write('\t\n');
}

async function terminateTornLine(file: string): Promise<void> {
  const handle = await open(file, 'a+');
  try {
    await endWithNewline(handle);
  } finally {
    await handle.close();
  }
}
