import { writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeDirectory } from '../../systems/files/make-directory.js';

/** Where a LineWriter's batches go: `write` appends whole lines, `sync` makes them durable. */
export interface LineSink {
  write(batch: string): Promise<void>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: Error) => void;
}

function deferred(): Deferred {
  let resolve: () => void = () => undefined;
  let reject: (err: Error) => void = () => undefined;
  const promise = new Promise<void>((ok, fail) => { resolve = ok; reject = fail; });
  // A caller may only wait for one of written/durable; the other must not be an unhandled rejection.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

interface PendingLine {
  readonly line: string;
  readonly written: Deferred;
  readonly durable: Deferred;
}

/**
 * The least time from the start of one fsync of a file to the start of the next. Under load the
 * lines written meanwhile share one fsync instead of each write being followed by its own: at
 * 1,000 alerts/s the journal and the guards' file were fsynced about 200 times a second, and
 * spacing them by 20 ms took 8 % off the server's CPU per alert (docs/performance.md, "Fsyncs
 * spaced"). A line waits at most this much longer to be durable; a lone line is synced at once.
 * Acknowledgements wait for `written`, not for this.
 */
export const SYNC_SPACING_MS = 20;

/**
 * Appends a batch to an open file with write() on the calling thread, as Redis appends to its AOF
 * from its event loop and leaves the fsync to a background thread. A write into the page cache
 * takes microseconds; handing it to node's thread pool cost the main thread ~17 µs and woke a pool
 * thread, which preempted the main thread, for every batch: at 1,000 alerts/s that was about 5
 * wakeups per alert, and taking them away cut the acknowledgement's p99 by a third
 * (docs/performance.md, "Lines written in place"). The cost: a write that blocks (a disk so far
 * behind that the kernel throttles writers) holds up the event loop for that long, as it does
 * Redis's. fsyncs stay in the pool (LineWriter's `sync`). Returns the bytes written.
 */
export function appendNow(fd: number, batch: Buffer): number {
  return writeSync(fd, batch);
}

export interface LineWriterOptions {
  readonly syncSpacingMs?: number;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<unknown>;
}

/**
 * Group commit, with writes and syncs overlapping: lines that arrive while a write is in flight
 * share the next write, and lines written while an fsync is in flight (or while the next waits
 * out SYNC_SPACING_MS) share the next fsync. A write never waits for an fsync, so `written` (what
 * the webhook acknowledges on) costs one write() however slow the disk's fsync is. Each batch is
 * one write() of whole lines on a file opened for append, so lines of several processes
 * appending to the same file never interleave.
 */
export class LineWriter {
  private pending: PendingLine[] = [];
  private writing: Promise<void> | null = null;
  /** Written, waiting for an fsync that starts after their write ended. */
  private unsynced: PendingLine[] = [];
  private syncing: Promise<void> | null = null;
  private lastSyncStart = Number.NEGATIVE_INFINITY;
  private readonly syncSpacingMs: number;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<unknown>;

  constructor(private readonly sink: LineSink, options: LineWriterOptions = {}) {
    this.syncSpacingMs = options.syncSpacingMs ?? SYNC_SPACING_MS;
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? sleep;
  }

  /** `written`: the line is in the file (it survives upkeep being killed); `durable`: it is fsync'd (it survives the machine going down). */
  enqueue(line: string): { written: Promise<void>; durable: Promise<void> } {
    const entry: PendingLine = { line: line.endsWith('\n') ? line : `${line}\n`, written: deferred(), durable: deferred() };
    this.pending.push(entry);
    this.writing ??= this.writeAll();
    return { written: entry.written.promise, durable: entry.durable.promise };
  }

  private async writeAll(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      try {
        await this.sink.write(batch.map((entry) => entry.line).join(''));
      } catch (err) {
        for (const entry of batch) {
          entry.written.reject(err as Error);
          entry.durable.reject(err as Error);
        }
        continue;
      }
      for (const entry of batch) entry.written.resolve();
      this.unsynced.push(...batch);
      this.syncing ??= this.syncAll();
    }
    this.writing = null;
  }

  private async syncAll(): Promise<void> {
    while (this.unsynced.length > 0) {
      const wait = this.lastSyncStart + this.syncSpacingMs - this.now();
      if (wait > 0) await this.sleep(wait);
      this.lastSyncStart = this.now();
      const batch = this.unsynced;
      this.unsynced = [];
      try {
        await this.sink.sync();
        for (const entry of batch) entry.durable.resolve();
      } catch (err) {
        for (const entry of batch) entry.durable.reject(err as Error);
      }
    }
    this.syncing = null;
  }

  /** Resolves once every line enqueued so far has been written and synced (or failed). */
  async idle(): Promise<void> {
    while (this.writing ?? this.syncing) await (this.writing ?? this.syncing);
  }

  async close(): Promise<void> {
    await this.idle();
    await this.sink.close();
  }
}

/** A sink appending to one file, created (with its directory) on the first write. */
export class FileSink implements LineSink {
  private handle: FileHandle | null = null;

  constructor(readonly file: string) {}

  async write(batch: string): Promise<void> {
    if (!this.handle) {
      await makeDirectory(dirname(this.file));
      this.handle = await open(this.file, 'a');
    }
    appendNow(this.handle.fd, Buffer.from(batch));
  }

  async sync(): Promise<void> {
    await this.handle?.datasync();
  }

  async close(): Promise<void> {
    await this.handle?.close();
    this.handle = null;
  }
}
