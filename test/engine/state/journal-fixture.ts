import { hostname } from 'node:os';
import type { RunRecord } from '../../../src/engine/journal.js';
import { FileJournal, JOURNAL_LIMITS, type FileJournalOptions } from '../../../src/engine/state/file-journal.js';
import { newRunId } from '../../../src/engine/state/run-id.js';

export const T0 = Date.parse('2024-05-01T00:00:00Z');

/** A clock the test moves. */
export function clock(start = T0): { now: () => number; set: (ms: number) => void } {
  let current = start;
  return { now: () => current, set: (ms) => { current = ms; } };
}

/** A queued run made at `atMs`, with a time-ordered id. */
export function queued(atMs: number, changes: Partial<RunRecord> = {}): RunRecord {
  return {
    id: newRunId(atMs), remediation: 'postgres.vacuum', trigger: 'manual', status: 'queued', params: { table: 'public.orders' },
    queuedAt: new Date(atMs).toISOString(), host: hostname(), pid: process.pid, ...changes,
  };
}

export function finished(record: RunRecord, status: RunRecord['status'], atMs: number): RunRecord {
  return { ...record, status, startedAt: record.queuedAt, finishedAt: new Date(atMs).toISOString() };
}

/**
 * Journals a run at each of `times`, in that order: its queued line (written), then its final
 * line (durable), with the status `status` gives its position. The final records, in that order.
 */
export async function journalRuns(
  store: { append(record: RunRecord): { written: Promise<unknown>; durable: Promise<unknown> } },
  times: readonly number[],
  status: (n: number) => RunRecord['status'] = () => 'success',
  changes: (n: number) => Partial<RunRecord> = () => ({}),
): Promise<RunRecord[]> {
  const finals: RunRecord[] = [];
  for (const [n, at] of times.entries()) {
    const record = queued(at, changes(n));
    await store.append(record).written;
    const final = finished(record, status(n), at + 500);
    await store.append(final).durable;
    finals.push(final);
  }
  return finals;
}

export async function openJournal(t: { teardown(fn: () => unknown): void }, dir: string, options: Partial<FileJournalOptions> = {}): Promise<FileJournal> {
  // The journal's clock agrees with the records' times, as the engine's does.
  const journal = await FileJournal.open({ ...JOURNAL_LIMITS, dir, now: () => T0 + 3_600_000, retentionMs: 90 * 86_400_000, ...options });
  t.teardown(() => journal.close());
  return journal;
}

/** Every page of a listing, following `next` to the end. */
export async function allPages(journal: FileJournal, filter: Parameters<FileJournal['list']>[0], limit: number): Promise<{ ids: string[]; statuses: string[]; pages: number }> {
  const ids: string[] = [];
  const statuses: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const page: Awaited<ReturnType<FileJournal['list']>> = await journal.list(filter, cursor, limit);
    pages += 1;
    for (const run of page.runs) {
      ids.push(run.id);
      statuses.push(run.status);
    }
    cursor = page.next;
  } while (cursor !== null);
  return { ids, statuses, pages };
}
