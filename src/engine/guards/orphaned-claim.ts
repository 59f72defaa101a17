import type { RunRecord } from '../journal.js';
import { idTime } from '../state/run-id.js';

/** A claim younger than this may be a live peer's, whose run's `queued` line is still being written. */
export const ORPHANED_AFTER_MS = 60_000;

/**
 * Whether an alert claim held by run `holder` was left by an upkeep killed between the claim and
 * its run's `queued` line. That delivery was never acknowledged, so Alertmanager sends it again,
 * and without this every re-delivery would be a duplicate of a run that does not exist until the
 * claim expires (7 days). It is orphaned when the holder's id says it was made at least
 * ORPHANED_AFTER_MS ago and the journal, which keeps every run younger than `retentionMs`, has no
 * such run. Older holders are left alone: the journal may have let go of a run that did happen.
 * The limit: a replica stalled longer than ORPHANED_AFTER_MS between its claim and its line (a
 * paused VM) comes back to an alert taken over, and runs it too; the run's lock and the cooldown
 * then stand between the two runs, as between any two runs of one (remediation, target).
 */
export async function orphanedClaim(holder: string, nowMs: number, retentionMs: number, find: (id: string) => Promise<RunRecord | undefined>): Promise<boolean> {
  const madeMs = idTime(holder);
  if (madeMs === null) return false;
  const age = nowMs - madeMs;
  if (age < ORPHANED_AFTER_MS || age >= retentionMs) return false;
  return (await find(holder)) === undefined;
}
