import { mkdir, open, readFile, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import type { RunRecord, RunStatus } from './types.js';

/**
 * The durable, append-only run journal: one JSON line per state change of a run (queued,
 * running, finished), each fsync'd. Reading it back folds the lines by run
 * id, so the last line of a run is its state. Appends are group-committed: lines that arrive
 * while a write is in flight share the next write and fsync.
 */
const step = z.object({ kind: z.enum(['sql', 'redis', 'docker', 'file', 'exec']), detail: z.string() });
const json = z.record(z.string(), z.unknown());
const alert = z.object({ fingerprint: z.string(), startsAt: z.string(), alertname: z.string(), labels: z.record(z.string(), z.string()) });
const statuses = ['queued', 'running', 'success', 'failure', 'skipped', 'dry_run', 'interrupted', 'duplicate', 'cancelled', 'rejected'] as const;

export const runRecordSchema = z.object({
  id: z.string(),
  remediation: z.string(),
  trigger: z.enum(['alert', 'manual', 'schedule', 'cli']),
  status: z.enum(statuses),
  params: json,
  reason: z.string().optional(),
  alert: alert.optional(),
  plan: z.array(step).optional(),
  output: json.optional(),
  verification: z.object({ ok: z.boolean(), detail: z.string(), observed: json.optional() }).optional(),
  error: z.string().optional(),
  queuedAt: z.string(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
  dryRun: z.boolean().optional(),
  risk: z.enum(['safe', 'disruptive', 'destructive']).optional(),
  source: z.string().optional(),
  check: z.object({ proceed: z.boolean(), reason: z.string(), observed: json.optional() }).optional(),
  skipCode: z.enum(['condition', 'lock', 'cooldown', 'circuit', 'risk', 'window']).optional(),
  duplicateOf: z.string().optional(),
  lockKey: z.string().optional(),
  silenceId: z.string().optional(),
  host: z.string().optional(),
  pid: z.number().optional(),
});

const UNFINISHED: ReadonlySet<RunStatus> = new Set(['queued', 'running']);

export function isFinished(status: RunStatus): boolean {
  return !UNFINISHED.has(status);
}

export interface RunFilter {
  remediation?: string;
  status?: RunStatus;
  trigger?: RunRecord['trigger'];
  limit?: number;
}

/** True when the process that owned an unfinished run is still alive on this host (e.g. a server while `upkeep run` starts). */
function ownerAlive(record: RunRecord, host: string): boolean {
  if (record.host !== host || record.pid === undefined || record.pid === process.pid) return false;
  try {
    process.kill(record.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
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

export class Journal {
  private readonly runs = new Map<string, RunRecord>();
  private pending: PendingLine[] = [];
  private writing: Promise<void> | null = null;
  readonly host = hostname();
  /** Lines that could not be read back (a torn last line after a crash). */
  skippedLines = 0;

  private handle: FileHandle | null = null;

  private constructor(readonly file: string) {}

  /** Loads the journal under `stateDir`; the file is created on the first append, so an app that never runs anything writes nothing. */
  static async open(stateDir: string): Promise<Journal> {
    const journal = new Journal(join(stateDir, 'journal', 'runs.jsonl'));
    let text = '';
    try {
      text = await readFile(journal.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    journal.load(text);
    return journal;
  }

  private load(text: string): void {
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        this.skippedLines += 1;
        continue;
      }
      const result = runRecordSchema.safeParse(parsed);
      if (!result.success) {
        this.skippedLines += 1;
        continue;
      }
      this.runs.delete(result.data.id); // re-insert so iteration order is "last changed last"
      this.runs.set(result.data.id, result.data);
    }
  }

  /** Marks runs that a dead process left queued or running as interrupted; returns them. */
  async recoverInterrupted(now: Date): Promise<RunRecord[]> {
    const interrupted: RunRecord[] = [];
    for (const record of [...this.runs.values()]) {
      if (isFinished(record.status) || ownerAlive(record, this.host)) continue;
      const wasRunning = record.status === 'running';
      interrupted.push({
        ...record,
        status: 'interrupted',
        reason: wasRunning ? 'upkeep stopped while the run was in progress; check the target before re-running' : 'upkeep stopped before the run started',
        finishedAt: now.toISOString(),
      });
    }
    await Promise.all(interrupted.map((record) => this.append(record)));
    return interrupted;
  }

  get(id: string): RunRecord | undefined {
    return this.runs.get(id);
  }

  all(): IterableIterator<RunRecord> {
    return this.runs.values();
  }

  /** Newest first. */
  list(filter: RunFilter = {}): RunRecord[] {
    const matched: RunRecord[] = [];
    const records = [...this.runs.values()].sort((a, b) => (a.queuedAt < b.queuedAt ? 1 : a.queuedAt > b.queuedAt ? -1 : 0));
    for (const record of records) {
      if (filter.remediation !== undefined && record.remediation !== filter.remediation) continue;
      if (filter.status !== undefined && record.status !== filter.status) continue;
      if (filter.trigger !== undefined && record.trigger !== filter.trigger) continue;
      matched.push(record);
      if (filter.limit !== undefined && matched.length >= filter.limit) break;
    }
    return matched;
  }

  /** Records the run's new state; resolves once the line is fsync'd. */
  append(record: RunRecord): Promise<void> {
    return this.enqueue(record).durable;
  }

  /**
   * Records the run's new state; `written` resolves once the line is in the file (it survives
   * upkeep being killed), `durable` once it is fsync'd (it survives the machine going down).
   */
  enqueue(record: RunRecord): { written: Promise<void>; durable: Promise<void> } {
    this.runs.delete(record.id);
    this.runs.set(record.id, record);
    const entry: PendingLine = { line: `${JSON.stringify(record)}\n`, written: deferred(), durable: deferred() };
    this.pending.push(entry);
    if (!this.writing) this.writing = this.flush();
    return { written: entry.written.promise, durable: entry.durable.promise };
  }

  // Group commit: one write and one fsync for every line that arrived since the last batch.
  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      try {
        if (!this.handle) {
          await mkdir(dirname(this.file), { recursive: true });
          this.handle = await open(this.file, 'a');
        }
        await this.handle.write(batch.map((entry) => entry.line).join(''));
        for (const entry of batch) entry.written.resolve();
        await this.handle.datasync();
        for (const entry of batch) entry.durable.resolve();
      } catch (err) {
        for (const entry of batch) {
          entry.written.reject(err as Error);
          entry.durable.reject(err as Error);
        }
      }
    }
    this.writing = null;
  }

  async close(): Promise<void> {
    if (this.writing) await this.writing;
    await this.handle?.close();
    this.handle = null;
  }
}
