import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

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
 * Group commit, with writes and syncs overlapping: lines that arrive while a write is in flight
 * share the next write, and lines written while an fsync is in flight share the next fsync. A
 * write never waits for an fsync, so `written` (what the webhook acknowledges on) costs one
 * write() however slow the disk's fsync is. Each batch is one write() of whole lines on a file
 * opened for append, so lines of several processes appending to the same file never interleave.
 */
export class LineWriter {
  private pending: PendingLine[] = [];
  private writing: Promise<void> | null = null;
  /** Written, waiting for an fsync that starts after their write ended. */
  private unsynced: PendingLine[] = [];
  private syncing: Promise<void> | null = null;

  constructor(private readonly sink: LineSink) {}

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
      await mkdir(dirname(this.file), { recursive: true });
      this.handle = await open(this.file, 'a');
    }
    await this.handle.write(batch);
  }

  async sync(): Promise<void> {
    await this.handle?.datasync();
  }

  async close(): Promise<void> {
    await this.handle?.close();
    this.handle = null;
  }
}
