import type { AlertRef, RunRecord, RunStatus, SkipCode } from '../journal.js';

/** The identity of an alert delivery for one remediation: a re-delivery has the same key. */
export function idempotencyKey(alert: AlertRef, remediation: string): string {
  return JSON.stringify([alert.fingerprint, alert.startsAt, remediation]);
}

// Refusals that depend on when the alert arrived: a later re-delivery (inside a window, after the
// cooldown, with the circuit closed again) may run, so these do not use up the alert.
const RETRYABLE_SKIPS: ReadonlySet<SkipCode> = new Set(['risk', 'window', 'circuit', 'cooldown']);

// Runs that neither did the work nor decided it was not needed: a re-delivery may try again
// (the circuit breaker and the cooldown still stand in its way).
const RETRYABLE_STATUSES: ReadonlySet<RunStatus> = new Set(['failure', 'interrupted', 'duplicate']);

/**
 * Whether the run used up its alert, so a re-delivery is a duplicate: a success, a skip on its
 * condition or on another run's lock, a dry run, a rejection. A failure or an interrupted run
 * gives its claim back.
 */
export function consumesAlert(record: RunRecord): boolean {
  if (!record.alert || RETRYABLE_STATUSES.has(record.status)) return false;
  return !(record.status === 'skipped' && record.skipCode !== undefined && RETRYABLE_SKIPS.has(record.skipCode));
}
