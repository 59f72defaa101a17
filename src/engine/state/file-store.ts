import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { makeDirectory } from '../../systems/files/make-directory.js';
import { StateStoreError } from './store-error.js';
import type { Logger } from '../../log.js';
import type { RunRecord } from '../journal.js';
import { FileJournal, JOURNAL_LIMITS, type JournalLimits } from './file-journal.js';
import { CLAIM_LIMIT, CLAIM_TTL_MS, GuardFile } from './guard-file.js';
import type { Appended, RunFilter, RunPage, RunPageJson, StateStore, StoreOptions } from './store.js';

/** Maintenance (every maintenanceMs, and at open) also rotates and compacts the journal here. */
export interface FileStoreOptions extends StoreOptions {
  /** `state.dir`: the journal goes to `journal/`, the guards' memory to `guards/`. */
  readonly dir: string;
  /** Smaller segments for tests; the defaults are JOURNAL_LIMITS. */
  readonly limits?: Partial<JournalLimits>;
}

const MAINTENANCE_MS = 3_600_000;

/** The embedded state store: a directory, for one replica (and the `upkeep run` processes beside it). */
export class FileStore implements StateStore {
  /** One host: a start marks what a crash left (recoverInterrupted), no lease needed. */
  readonly leases = null;
  /** One replica: backup.verify's own ledger under state.dir says when it last succeeded. */
  readonly successes = null;
  private readonly timer: NodeJS.Timeout;

  private constructor(private readonly journal: FileJournal, readonly guards: GuardFile, private readonly log: Logger, maintenanceMs: number) {
    this.timer = setInterval(() => void this.maintain(), maintenanceMs);
    this.timer.unref();
  }

  static async open(options: FileStoreOptions): Promise<FileStore> {
    const now = options.now ?? Date.now;
    // Made and checked here, so a state.dir upkeep cannot write stops the start with its reason.
    // When it was made only at the first write, serve started, answered /readyz ready and failed
    // every run with a 500 (state.dir under /proc, 2026-12-04).
    try {
      await makeDirectory(options.dir);
      await access(options.dir, constants.W_OK | constants.X_OK);
    } catch (err) {
      throw new StateStoreError(`cannot make or write ${options.dir}`, err, 'state.dir');
    }
    let opened: [FileJournal, GuardFile];
    try {
      opened = await Promise.all([
        FileJournal.open({ ...JOURNAL_LIMITS, ...options.limits, dir: join(options.dir, 'journal'), now, retentionMs: options.retentionMs }),
        GuardFile.open({
          dir: join(options.dir, 'guards'), now, claimTtlMs: CLAIM_TTL_MS, claimLimit: CLAIM_LIMIT,
          cooldownMs: options.cooldownMs, failureWindowMs: options.failureWindowMs,
        }),
      ]);
      await opened[0].maintain();
    } catch (err) {
      // What is below it too: journal/ made by root (a `sudo upkeep run`), then serve as its own
      // user, was an uncaught EACCES with node's stack, where the directory itself gets one line.
      throw err instanceof StateStoreError ? err : new StateStoreError(`cannot make or write ${options.dir}`, err, 'state.dir');
    }
    const [journal, guards] = opened;
    return new FileStore(journal, guards, options.log, options.maintenanceMs ?? MAINTENANCE_MS);
  }

  get skipped(): readonly { file: string; lines: number }[] {
    return [...this.journal.skipped, ...this.guards.skipped];
  }

  /** Retention and rotation of the journal, compaction of the guards' memory. */
  async maintain(): Promise<void> {
    try {
      await this.journal.maintain();
      await this.guards.compact();
    } catch (err) {
      this.log.error({ err }, 'state maintenance failed (retention, rotation or compaction); it is tried again within the hour');
    }
  }

  /** Always `stored`: the file store serves one host, where no peer finishes a live process's runs. */
  append(record: RunRecord): { written: Promise<void>; durable: Promise<Appended> } {
    const { written, durable } = this.journal.append(record);
    const stored = durable.then(() => 'stored' as const);
    // A caller may wait only for `written` (a dry run's lines): when the write fails, this copy of
    // the failure must not be an unhandled rejection, which ends the process.
    stored.catch(() => undefined);
    return { written, durable: stored };
  }

  get(id: string): Promise<RunRecord | undefined> {
    return this.journal.get(id);
  }

  list(filter: RunFilter, cursor: string | null, limit: number): Promise<RunPage> {
    return this.journal.list(filter, cursor, limit);
  }

  listJson(filter: RunFilter, cursor: string | null, limit: number): Promise<RunPageJson> {
    return this.journal.listJson(filter, cursor, limit);
  }

  recoverInterrupted(now: Date): Promise<RunRecord[]> {
    return this.journal.recoverInterrupted(now);
  }

  legacyRecords(): AsyncIterable<RunRecord> {
    return this.journal.legacyRecords();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.journal.close();
    await this.guards.close();
  }
}
