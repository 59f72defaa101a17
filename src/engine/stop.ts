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

/** The engine is shutting down: the run is interrupted, not failed. */
export class ShutDown extends Error {}
