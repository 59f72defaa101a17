import type { AlertRef, RunRecord, SkipCode } from '../journal.js';

/** The identity of an alert delivery for one remediation: a re-delivery has the same key. */
export function idempotencyKey(alert: AlertRef, remediation: string): string {
  return JSON.stringify([alert.fingerprint, alert.startsAt, remediation]);
}

// Refusals that depend on when the alert arrived: a later re-delivery (inside a window, after the
// cooldown, with the circuit closed again) may run, so these do not use up the alert.
const RETRYABLE_SKIPS: ReadonlySet<SkipCode> = new Set(['risk', 'window', 'circuit', 'cooldown']);

/** Whether the run used up its alert, so a re-delivery is a duplicate. */
export function consumesAlert(record: RunRecord): boolean {
  if (!record.alert || record.status === 'duplicate') return false;
  return !(record.status === 'skipped' && record.skipCode !== undefined && RETRYABLE_SKIPS.has(record.skipCode));
}
