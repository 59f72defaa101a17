import { isFinished, type RunRecord } from '../journal.js';
import { consumesAlert } from './idempotency.js';
import { idTime } from '../state/run-id.js';

/** A claim younger than this may be a live peer's, whose run's `queued` line is still being written. */
export const ORPHANED_AFTER_MS = 60_000;

/**
 * Why an alert claim held by run `holder` should have been given back, or null when it holds. A
 * re-delivery then takes it over instead of being a duplicate of `holder` until the claim expires
 * (7 days):
 *
 * - The holder finished without using up the alert (a failure, an interruption): it gave the
 *   claim back before its final line, but that write failed (a full disk) and the claim came back
 *   with the next start.
 * - The holder never reached the journal: an upkeep was killed between the claim and the run's
 *   `queued` line, and never acknowledged that delivery, so Alertmanager sends it again. Only when
 *   the holder's id says it was made at least ORPHANED_AFTER_MS ago (younger, it may be a live
 *   peer's run about to write its line) and less than `retentionMs` ago (older, the journal may
 *   have let go of a run that did happen). The limit: a replica stalled longer than that between
 *   its claim and its line (a paused VM) comes back to an alert taken over, and runs it too; the
 *   run's lock and the cooldown then stand between the two runs, as between any two runs of one
 *   (remediation, target).
 */
export async function orphanedClaim(holder: string, nowMs: number, retentionMs: number, find: (id: string) => Promise<RunRecord | undefined>): Promise<string | null> {
  const record = await find(holder);
  if (record) {
    const givenBack = record.alert !== undefined && isFinished(record.status) && !consumesAlert(record);
    return givenBack ? `the run that held it ended ${record.status}, which gives the alert back, but the claim was not released` : null;
  }
  const madeMs = idTime(holder);
  if (madeMs === null) return null;
  const age = nowMs - madeMs;
  return age >= ORPHANED_AFTER_MS && age < retentionMs ? 'the run that held it never reached the journal (upkeep stopped in between)' : null;
}
