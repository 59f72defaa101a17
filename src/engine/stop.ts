import type { SkipCode } from './journal.js';
import type { Refusal } from './guards/risk-window.js';

/** Ends the current step of a run as skipped (saying why, as a code) or cancelled. */
export class Stop extends Error {
  constructor(readonly status: 'skipped' | 'cancelled', readonly reason: string, readonly code?: SkipCode) {
    super(reason);
  }

  static from(refusal: Refusal): Stop {
    return new Stop('skipped', refusal.reason, refusal.code);
  }
}

/**
 * The engine is shutting down: the run is interrupted, not failed. `abandonAfterMs`: how long a
 * run's step may take to notice before the engine stops waiting for it, so that its final line is
 * written before the process's deadline (unset: as after a run's deadline).
 */
export class ShutDown extends Error {
  constructor(message: string, readonly abandonAfterMs?: number) {
    super(message);
  }
}
