import type { z } from 'zod';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Connections } from '../systems/connections.js';

/**
 * The contract between the engine and an action family. An action knows its system (SQL,
 * Redis commands, Docker calls, files); the engine owns every guard: validation, locks,
 * idempotency, cooldown, circuit breaker, risk gates, windows, dry-run, deadlines, journal.
 */
export type Risk = 'safe' | 'disruptive' | 'destructive';
export type Trigger = 'alert' | 'manual' | 'schedule' | 'cli';

/** One exact thing a run will do: an SQL statement, a Redis command, a Docker API call, a file path. */
export interface PlanStep {
  readonly kind: 'sql' | 'redis' | 'docker' | 'file' | 'exec';
  /** The exact statement / command / call, as it will be executed. */
  readonly detail: string;
}

/** What must be held while the action runs, so one run per (remediation, target object) happens at a time across replicas. */
export type LockSpec =
  | { readonly kind: 'postgres'; readonly target: string; readonly database: string; readonly key: string }
  | { readonly kind: 'redis'; readonly target: string; readonly key: string }
  | { readonly kind: 'local'; readonly key: string };

export interface ActionContext {
  readonly config: Readonly<Config>;
  readonly log: Logger;
  readonly connections: Connections;
  /** Aborted when the run's deadline passes (or the engine shuts down). */
  readonly signal: AbortSignal;
  /** Epoch milliseconds by which the run must be finished. */
  readonly deadline: number;
  /** Who asked: alert and schedule runs act only on what the config lets them (see `screen`). */
  readonly trigger: Trigger;
}

export interface CheckResult {
  /** false: the condition has cleared and the run is skipped with `reason`. */
  readonly proceed: boolean;
  readonly reason: string;
  /** What was observed (dead tuples, LASTSAVE...) - kept in the journal and passed to verify. */
  readonly observed?: Readonly<Record<string, unknown>>;
}

export interface VerifyResult {
  readonly ok: boolean;
  readonly detail: string;
  readonly observed?: Readonly<Record<string, unknown>>;
}

export interface RunOutput {
  /** Free-form, JSON-serialisable facts about the run (rows deleted, bytes reclaimed...). */
  readonly detail: Readonly<Record<string, unknown>>;
}

/**
 * A remediation. `P` is the validated parameter type. Every identifier in P that came from an
 * alert label must be checked against the live catalog in `resolve` (and quoted when used).
 */
export interface Action<P> {
  readonly name: string;
  readonly description: string;
  /** Human summary of the risk class for GET /remediations, e.g. "safe; full: true is disruptive". */
  readonly riskClass?: string;
  readonly params: z.ZodType<P>;
  /** The risk of this particular invocation (e.g. postgres.vacuum with full: true is disruptive). */
  risk(params: P): Risk;
  /**
   * Refuses what the config alone shows is not allowed (a system schema, a table outside the
   * target's filters, an unwatched database...), before the run is queued: throws ValidationError.
   * Pure and synchronous, so the webhook can answer with the reason.
   */
  screen?(params: P, config: Readonly<Config>, trigger: Trigger): void;
  /**
   * Checks identifiers against the live catalog; throws ValidationError with a reason when one is
   * unknown or not allowed. Returns the params with names as the catalog spells them, so two
   * spellings of one object share a lock and a cooldown.
   */
  resolve(params: P, context: ActionContext): Promise<P>;
  /** What to lock while running. */
  lock(params: P, config: Readonly<Config>): LockSpec;
  /** Is the condition still true? Called just before acting. */
  check(params: P, context: ActionContext): Promise<CheckResult>;
  /** The exact steps. A dry run records these and executes nothing. */
  plan(params: P, context: ActionContext): Promise<PlanStep[]>;
  run(params: P, plan: readonly PlanStep[], context: ActionContext): Promise<RunOutput>;
  /** Did it work? A failed verification makes the run a failure. */
  verify(params: P, before: CheckResult, output: RunOutput, context: ActionContext): Promise<VerifyResult>;
}

/**
 * An action whose parameter type has been erased, for registries and the engine. Methods are
 * declared in method syntax, so Action<Specific> is assignable here; the engine only ever hands
 * an action back the value its own `params` schema produced.
 */
export type AnyAction = Action<unknown>;

/** Rejected input: the engine journals it and answers 400 / skips, never runs anything. */
export class ValidationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ValidationError';
  }
}

/** The alert that triggered a run, as Alertmanager identified it. */
export interface AlertRef {
  readonly fingerprint: string;
  readonly startsAt: string;
  readonly alertname: string;
  readonly labels: Readonly<Record<string, string>>;
}

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
}

export type RunStatus =
  | 'queued' | 'running' | 'success' | 'failure' | 'skipped' | 'dry_run'
  | 'interrupted' | 'duplicate' | 'cancelled' | 'rejected';

export interface RunRecord {
  readonly id: string;
  readonly remediation: string;
  readonly trigger: Trigger;
  readonly status: RunStatus;
  readonly params: Readonly<Record<string, unknown>>;
  readonly reason?: string;
  readonly alert?: AlertRef;
  readonly plan?: readonly PlanStep[];
  readonly output?: Readonly<Record<string, unknown>>;
  readonly verification?: VerifyResult;
  readonly error?: string;
  readonly queuedAt: string;
  readonly startedAt?: string;
  readonly finishedAt?: string;
  /** Whether this run was (or would have been) a dry run. */
  readonly dryRun?: boolean;
  /** The risk of this invocation, once its parameters were valid. */
  readonly risk?: Risk;
  /** The schedule entry or rule that produced the request. */
  readonly source?: string;
  /** What `check` observed just before acting. */
  readonly check?: CheckResult;
  /** Why a run was skipped, as a stable word: condition, lock, cooldown, circuit, risk, window. */
  readonly skipCode?: SkipCode;
  /** For a duplicate: the run that already handled this alert. */
  readonly duplicateOf?: string;
  /** The (remediation, target object) the run locked; cooldowns are kept per lock key. */
  readonly lockKey?: string;
  /** The Alertmanager silence held while the run went on. */
  readonly silenceId?: string;
  /** The process that owns the run, so a restart only marks its own dead runs interrupted. */
  readonly host?: string;
  readonly pid?: number;
}

export type SkipCode = 'condition' | 'lock' | 'cooldown' | 'circuit' | 'risk' | 'window';

/** What a trigger needs from the engine. */
export interface RunSubmitter {
  submit(request: RunRequest): { runId: string; done: Promise<RunRecord> };
}
