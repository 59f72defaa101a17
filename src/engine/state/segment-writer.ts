import { open, rename, writeFile, type FileHandle } from 'node:fs/promises';
import { isFinished } from '../journal.js';
import { appendNow } from './line-writer.js';
import type { RunKey } from './run-key.js';
import { encodeIndex, summarise, type IndexHeader } from './segment-index.js';
import type { SegmentSet, Tail } from './segment-set.js';
import { TailIndex } from './tail-index.js';
import { makeDirectory } from '../../systems/files/make-directory.js';

export interface SegmentLimits {
  readonly now: () => number;
  /** A segment is rotated once it holds this many bytes, this many runs, or is this old. */
  readonly segmentBytes: number;
  readonly segmentRuns: number;
  readonly segmentAgeMs: number;
  /** How long a rotated segment stays in memory before its index is written (late appends). */
  readonly sealGraceMs: number;
}

/**
 * Appending to the journal: batches of whole lines go to the newest segment; a full or old one is
 * rotated, and a rotated one is sealed (its index written) once the grace for late appends has
 * passed. Callers hold the journal's lock around each call.
 */
export class SegmentWriter {
  private appending: { seq: number; handle: FileHandle } | null = null;
  private retiring: Promise<void> | null = null;

  constructor(private readonly segments: SegmentSet, private readonly limits: SegmentLimits) {}

  async write(batch: string): Promise<void> {
    await this.rotateIfDue();
    const handle = await this.appendHandle();
    const bytes = Buffer.from(batch);
    const bytesWritten = appendNow(handle.fd, bytes);
    if (bytesWritten < bytes.length) {
      // A full disk: the next batch opens the file again and starts on a line of its own.
      await this.close();
      throw new Error(`the journal took ${bytesWritten} of ${bytes.length} bytes (is the disk full?)`);
    }
    // Indexed from memory at the next look, unless another process appended meanwhile.
    this.segments.tails.at(-1)?.index.wrote(bytes);
  }

  /** Syncs every line written so far, including those of a segment left since the last sync. */
  async sync(): Promise<void> {
    const retiring = this.retiring;
    this.retiring = null;
    await Promise.all([retiring, this.appending?.handle.datasync()]);
  }

  /**
   * Syncs and closes the segment being written. The journal's fsync runs beside its writes
   * (LineWriter), so lines written to a segment being left may not be synced yet: the next sync()
   * waits for this one.
   */
  close(): Promise<void> {
    const leaving = this.appending;
    if (!leaving) return this.retiring ?? Promise.resolve();
    this.appending = null;
    this.retiring = leaving.handle.datasync().finally(() => leaving.handle.close());
    return this.retiring;
  }

  /** Whether the newest segment may be full: worth a look at the files before the next batch. */
  mayBeFull(): boolean {
    return this.segments.tails.at(-1)?.index.mayHold(this.limits.segmentBytes, this.limits.segmentRuns) ?? false;
  }

  async rotateIfDue(): Promise<void> {
    const now = this.limits.now();
    const active = this.segments.tails.at(-1);
    const born = active?.createdAt ?? active?.index.firstLineMs ?? now;
    const full = active !== undefined && active.index.bytes > 0 && (active.index.bytes >= this.limits.segmentBytes
      || active.index.runs >= this.limits.segmentRuns || now - born >= this.limits.segmentAgeMs);
    if (!active || full) {
      const seq = this.segments.nextSeq();
      if (active) active.rotatedAt = now;
      this.segments.tails.push({ seq, file: this.segments.file(seq, 'jsonl'), index: new TailIndex(), createdAt: now, rotatedAt: null, reader: null });
      // Created now, so other processes follow it from their next append.
      await this.appendHandle();
    }
    for (const tail of this.segments.tails.slice(0, -1)) {
      if (tail.rotatedAt !== null && now - tail.rotatedAt >= this.limits.sealGraceMs) await this.seal(tail);
    }
  }

  private async appendHandle(): Promise<FileHandle> {
    const active = this.segments.tails.at(-1);
    if (!active) throw new Error('no journal segment to append to');
    if (this.appending?.seq === active.seq) return this.appending.handle;
    await this.close();
    await makeDirectory(this.segments.dir);
    const handle = await open(active.file, 'a+');
    await endWithNewline(handle);
    this.appending = { seq: active.seq, handle };
    return handle;
  }

  /** Writes the segment's index, so it leaves memory; runs still unfinished are carried in the header. */
  private async seal(tail: Tail): Promise<void> {
    const { segments } = this;
    await segments.readTail(tail);
    const before = segments.sealed.filter((segment) => segment.seq < tail.seq).at(-1);
    const candidates = new Map<string, RunKey>();
    for (const key of before?.header.open ?? []) candidates.set(key.id, key);
    for (const entry of tail.index.unfinished()) candidates.set(entry.id, { time: entry.time, id: entry.id });
    const open: RunKey[] = [];
    for (const key of candidates.values()) {
      const latest = await segments.locate(key);
      if (latest && !isFinished(latest.entry.status)) open.push(key);
    }
    const header: IndexHeader = {
      version: 1, bytes: tail.index.bytes, lastLineMs: tail.index.lastLineMs, open, skippedLines: tail.index.skippedLines,
      ...summarise(tail.index.sorted),
    };
    const indexFile = segments.file(tail.seq, 'idx');
    await writeFile(`${indexFile}.${process.pid}.tmp`, encodeIndex(header, tail.index.sorted));
    await rename(`${indexFile}.${process.pid}.tmp`, indexFile);
    await tail.reader?.close();
    segments.tails = segments.tails.filter((other) => other !== tail);
    segments.sealed = [...segments.sealed, { seq: tail.seq, file: tail.file, indexFile, header }].sort((a, b) => a.seq - b.seq);
  }
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

export async function terminateTornLine(file: string): Promise<void> {
  const handle = await open(file, 'a+');
  try {
    await endWithNewline(handle);
  } finally {
    await handle.close();
  }
}
