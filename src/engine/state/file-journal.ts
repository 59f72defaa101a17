import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { isFinished } from '../journal.js';
import type { RunRecord } from '../journal.js';
import { IndexCache } from './index-cache.js';
import { readLegacyJournal } from './journal-legacy.js';
import { parseRecord, readLines } from './journal-page.js';
import { LineWriter } from './line-writer.js';
import { interruptedRecord, otherProcessAlive } from './owner.js';
import { idTime } from './run-id.js';
import { decodeCursor, type RunKey } from './run-key.js';
import { SegmentPages } from './segment-pages.js';
import { SegmentSet } from './segment-set.js';
import { SegmentWriter, terminateTornLine } from './segment-writer.js';
import { retentionHorizon, type RunFilter, type RunPage, type RunPageJson } from './store.js';

export { segmentName } from './segment-set.js';

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

const LEGACY_FILE = 'runs.jsonl';
// At most this long between looks at the files before writing; a quarter of the seal grace if that is shorter.
const LOOK_BEFORE_WRITE_MS = 1000;

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
  private readonly segments: SegmentSet;
  private readonly segmentWriter: SegmentWriter;
  private lock: Promise<unknown> = Promise.resolve();
  private queuedRefresh: Promise<void> | null = null;
  private readonly writer: LineWriter;
  private legacy: string | null = null;
  private readonly pages: SegmentPages;
  /** How old the last look at the files may be when a batch is written (see the writer below). */
  private readonly lookBeforeWriteMs: number;
  /** Lines that could not be read at open (a torn last line after a crash), per file. */
  readonly skipped: { file: string; lines: number }[] = [];

  private constructor(private readonly options: FileJournalOptions) {
    this.segments = new SegmentSet(options.dir, options.now, new IndexCache(options.indexSlots));
    this.segmentWriter = new SegmentWriter(this.segments, options);
    this.pages = new SegmentPages(this.segments);
    this.lookBeforeWriteMs = Math.min(LOOK_BEFORE_WRITE_MS, options.sealGraceMs / 4);
    this.writer = new LineWriter({
      write: (batch) => this.exclusive(async () => {
        // A batch goes to the newest segment, so the writer follows other processes' rotations.
        // It need not see them at once: a line appended to a segment rotated moments ago is a late
        // append, which the seal grace is for. Looking before every batch was two stat() calls
        // through the thread pool per batch. It still looks when the segment may be full, to
        // rotate it at its limits.
        if (this.segments.sinceLook() >= this.lookBeforeWriteMs || this.segmentWriter.mayBeFull()) await this.segments.refresh();
        await this.segmentWriter.write(batch);
      }),
      sync: () => this.segmentWriter.sync(),
      close: () => this.segmentWriter.close(),
    });
  }

  /** Lists the segments, reads the unsealed ones into memory and re-indexes any that grew after sealing. Creates nothing. */
  static async open(options: FileJournalOptions): Promise<FileJournal> {
    const journal = new FileJournal(options);
    const { segments } = journal;
    const names = await segments.names();
    if (names.includes(LEGACY_FILE)) {
      // A journal from before segments; any segments beside it are from a migration that did not finish.
      journal.legacy = join(options.dir, LEGACY_FILE);
      for (const name of names) if (segments.isSegment(name)) await unlink(join(options.dir, name));
    }
    await journal.exclusive(async () => {
      await segments.relist(true);
      for (const tail of segments.tails) await terminateTornLine(tail.file);
      await segments.refresh();
    });
    for (const tail of segments.tails) if (tail.index.skippedLines > 0) journal.skipped.push({ file: tail.file, lines: tail.index.skippedLines });
    return journal;
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
      await this.segments.refresh();
    });
    return this.queuedRefresh;
  }

  append(record: RunRecord): { written: Promise<void>; durable: Promise<void> } {
    return this.writer.enqueue(JSON.stringify(record));
  }

  async get(id: string): Promise<RunRecord | undefined> {
    await this.catchUp();
    const time = idTime(id);
    const located = time === null ? await this.segments.locateId(id) : await this.segments.locate({ time, id });
    if (!located) return undefined;
    const [line] = await readLines([located]);
    return parseRecord(line, id);
  }

  async list(filter: RunFilter, cursor: string | null, limit: number): Promise<RunPage> {
    const page = await this.listJson(filter, cursor, limit);
    return { runs: page.runs.flatMap((line) => parseRecord(line) ?? []), next: page.next };
  }

  /**
   * A page as the records' JSON texts, each checked against the record schema and then passed
   * on as it is: a page never holds more than its lines, so a reply costs little memory.
   */
  async listJson(filter: RunFilter, cursor: string | null, limit: number): Promise<RunPageJson> {
    const before = cursor === null ? null : decodeCursor(cursor);
    await this.catchUp();
    return this.pages.read(filter, before, limit);
  }

  /** Marks runs that a dead process left queued or running as interrupted; returns them. */
  async recoverInterrupted(now: Date): Promise<RunRecord[]> {
    await this.catchUp();
    const candidates = new Map<string, RunKey>();
    for (const key of this.segments.sealed.at(-1)?.header.open ?? []) candidates.set(key.id, key);
    for (const tail of this.segments.tails) for (const entry of tail.index.unfinished()) candidates.set(entry.id, entry);
    const interrupted: RunRecord[] = [];
    for (const key of candidates.values()) {
      const located = await this.segments.locate(key);
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
      await this.segments.refresh();
      const active = this.segments.tails.at(-1);
      if (active && active.index.bytes > 0) await this.segmentWriter.rotateIfDue();
      await this.segments.removeExpired(retentionHorizon(this.options.now(), this.segments.newestLineMs(), this.options.retentionMs));
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
    await this.exclusive(() => this.segments.closeReaders());
  }
}
