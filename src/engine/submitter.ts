import type { Risk, Trigger } from '../actions/contract.js';
import type { AlertRef, RunRecord, RunStatus } from './journal.js';

/** Everything that asks for a run (webhook, manual POST, CLI, schedule) submits one of these. */
export interface RunRequest {
  readonly remediation: string;
  readonly params: Readonly<Record<string, unknown>>;
  readonly trigger: Trigger;
  readonly dryRun?: boolean;
  readonly alert?: AlertRef;
  /** The highest risk the triggering rule allows for automatic runs. */
  readonly allowRisk?: Risk;
  /** The schedule entry or rule that produced the request, for the journal. */
  readonly source?: string;
  /** Overrides `remediation.timeoutSeconds` for this run. */
  readonly timeoutSeconds?: number;
  /** The run's id when the trigger claimed something in its name first (a schedule tick, with claimTick). */
  readonly id?: string;
}

/**
 * What submit() did. `journalled` resolves, with the run's status then, once the request is in the
 * journal: `queued`, or a final status when it was settled at once (duplicate alert, rejected by its
 * screen, shutting down); `done` then holds the reason.
 */
export interface Submitted { runId: string; done: Promise<RunRecord>; journalled: Promise<RunStatus> }

/** The one interface every trigger submits runs through: the engine implements it. */
export interface RunSubmitter {
  submit(request: RunRequest): Submitted;
}

/** Schedule ticks, each claimed once across the replicas that share a state store. */
export interface TickClaims {
  /**
   * Claims the tick of `job` due at `nominalMs` (its time in the schedule, not the clock of whoever
   * fires it): the id its run is to have, or the run that already has it.
   */
  claimTick(job: string, nominalMs: number): Promise<{ runId: string } | { heldBy: string }>;
}
