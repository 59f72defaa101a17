import type { Logger } from '../log.js';
import { idempotencyKey } from './guards/idempotency.js';
import type { RunHistory } from './history.js';
import type { RunRecord } from './journal.js';
import type { RemediationMetrics } from './metrics.js';
import type { AlertSilences } from './silences.js';
import type { StateStore } from './state/store.js';

/**
 * What a start finds left behind: a journal from before the store kept the guards' memory (replayed
 * once), unreadable lines (reported), runs a crash left unfinished (journalled as interrupted), and
 * the last success of each remediation (restored to its metric, so "has not succeeded for N days"
 * alerts keep working across restarts).
 */
export async function recover(parts: {
  store: StateStore; history: RunHistory; metrics: RemediationMetrics; silences?: AlertSilences; remediations: ReadonlySet<string>; log: Logger; now: () => number;
}): Promise<void> {
  const { store, history, metrics, remediations, log, now } = parts;
  await history.replay(store.legacyRecords());
  for (const { file, lines } of store.skipped) log.warn({ file, lines }, 'journal lines could not be read and were skipped');
  const interrupted = await store.recoverInterrupted(new Date(now()));
  await settleInterrupted(interrupted, parts, (record) => log.warn({ runId: record.id, remediation: record.remediation }, 'run was left unfinished by a previous upkeep; journalled as interrupted'));
  for (const [remediation, at] of await store.guards.lastSuccesses()) {
    if (remediations.has(remediation)) metrics.lastSuccess.set({ remediation }, at / 1000);
  }
}

/**
 * What follows a run journalled interrupted for its dead owner (at start, or by a peer once the
 * owner's lease expired): the metric, a log line, its alert given back, and the silence it held on
 * that alert expired. That silence outlived a kill -9 by up to an hour, and while it held,
 * Alertmanager sent no re-delivery that could run again.
 */
export async function settleInterrupted(
  records: readonly RunRecord[], parts: { history: RunHistory; metrics: RemediationMetrics; silences?: AlertSilences; log: Logger; now: () => number }, report: (record: RunRecord) => void,
): Promise<void> {
  for (const record of records) {
    report(record);
    parts.metrics.finished(record.remediation, record.status, null, parts.now());
    // An interrupted run did not do its work: a re-delivery of its alert may run again.
    if (record.alert) await parts.history.releaseAlert(idempotencyKey(record.alert, record.remediation), record.id);
    // Not awaited: a start does not wait for Alertmanager (release tries again while it is away).
    if (record.silenceId && parts.silences) void parts.silences.release(record.silenceId, parts.log.child({ runId: record.id }));
  }
}
