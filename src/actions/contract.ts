import { z } from 'zod';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Connections } from '../systems/connections.js';
import { onFirstUse } from '../lazy-schema.js';
import { plainMessage } from '../errors.js';

/**
 * The contract between the engine and an action family. An action knows its system (SQL,
 * Redis commands, Docker calls, files); the engine owns every guard: validation, locks,
 * idempotency, cooldown, circuit breaker, risk gates, windows, dry-run, deadlines, journal.
 * The shapes the journal keeps are zod schemas, written once here; their types are inferred.
 */
export const RISKS = ['safe', 'disruptive', 'destructive'] as const;
export type Risk = typeof RISKS[number];
export const TRIGGERS = ['alert', 'manual', 'schedule', 'cli'] as const;
export type Trigger = typeof TRIGGERS[number];

// A field of the two results below, built at load: as a schema built on first use it would cost a step on every parse.
const observed = z.record(z.string(), z.unknown());

/** One exact thing a run will do: an SQL statement, a Redis command, a Docker API call, a file path. */
export const planStepSchema = onFirstUse(() => z.object({
  kind: z.enum(['sql', 'redis', 'docker', 'file', 'exec']),
  /** The exact statement / command / call, as it will be executed. */
  detail: z.string(),
}));
export type PlanStep = Readonly<z.infer<typeof planStepSchema>>;

export const checkResultSchema = onFirstUse(() => z.object({
  /** false: the condition has cleared and the run is skipped with `reason`. */
  proceed: z.boolean(),
  reason: z.string(),
  /** What was observed (dead tuples, LASTSAVE...) - kept in the journal and passed to verify. */
  observed: observed.optional(),
}));
export type CheckResult = Readonly<z.infer<typeof checkResultSchema>>;

export const verifyResultSchema = onFirstUse(() => z.object({ ok: z.boolean(), detail: z.string(), observed: observed.optional() }));
export type VerifyResult = Readonly<z.infer<typeof verifyResultSchema>>;

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
  /** The engine's clock, in epoch milliseconds: what a plan depends on in time (file ages, names, cutoffs) reads it. */
  readonly now: () => number;
  /** A long run's progress (postgres.vacuum: its phase and heap blocks); the engine keeps the latest in the run's journal entry. */
  readonly progress?: (detail: Readonly<Record<string, unknown>>) => void;
  /**
   * The run's memo: a step several phases need (listing vacuum candidates, resolving a retention
   * policy) runs once per run and its result is shared by check and plan, so they act on one
   * reading of the state. Set by the engine for each run; absent, each phase computes its own.
   */
  readonly memo?: Map<string, Promise<unknown>>;
  /** The run only reports what it would do (remediation.dryRun): it reads, and changes nothing. */
  readonly dryRun?: boolean;
}

/**
 * `compute()` once per run under `key`, through the context's memo (see ActionContext.memo). The
 * caller names the key and always asks for it with the same type; a failed step is not kept, so
 * a later phase tries again.
 */
export function once<T>(context: ActionContext, key: string, compute: () => Promise<T>): Promise<T> {
  const memo = context.memo;
  if (!memo) return compute();
  const kept = memo.get(key);
  if (kept) return kept as Promise<T>;
  const fresh = compute();
  memo.set(key, fresh);
  fresh.catch(() => memo.delete(key));
  return fresh;
}

type Detail = Readonly<Record<string, unknown>>;

export interface RunOutput<O extends Detail = Detail> {
  /** JSON-serialisable facts about the run (rows deleted, bytes reclaimed...), read back by verify. */
  readonly detail: O;
}

/**
 * What a run will do: `steps` for people (the journal, /runs, `upkeep run`), `payload` for run(),
 * which executes exactly it. The payload is JSON (it is journalled beside the steps), and nothing
 * ever parses the steps' text back.
 */
export interface Plan<T> {
  readonly steps: readonly PlanStep[];
  readonly payload: T;
}

/**
 * A remediation. `P` is the validated parameter type. Every identifier in P that came from an
 * alert label must be checked against the live catalog in `resolve` (and quoted when used).
 */
export interface Action<P, T = unknown, O extends Detail = Detail> {
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
  plan(params: P, context: ActionContext): Promise<Plan<T>>;
  /** Carries out exactly the planned payload: it decides nothing the plan did not show. */
  run(params: P, payload: T, context: ActionContext): Promise<RunOutput<O>>;
  /** Did it work? A failed verification makes the run a failure. */
  verify(params: P, before: CheckResult, output: RunOutput<O>, context: ActionContext): Promise<VerifyResult>;
  /**
   * What a success leaves for every replica to read when the state is shared (state.postgres):
   * the object it was on and what it was about (backup.verify: the backup and the file restored),
   * so the replica that collects that object reports it. The engine keeps it, with the run's
   * finish time, on the main thread once the run has succeeded; null records nothing.
   */
  successRecord?(params: P, output: O): SuccessOf | null;
}

/** What an action's success records: see Action.successRecord. */
export interface SuccessOf {
  readonly subject: string;
  readonly detail: string;
}

/**
 * An action whose parameter type has been erased, for registries and the engine. Methods are
 * declared in method syntax, so Action<Specific> is assignable here; the engine only ever hands
 * an action back the value its own `params` schema produced.
 */
export type AnyAction = Action<unknown, unknown>;

/**
 * run() failed part-way: the failure, and what it had done by then (keys deleted, rows archived,
 * files removed...). The engine journals `done` as the failed run's output, so whoever looks knows
 * where it stopped; the message is the failure's.
 */
export class PartialWork extends Error {
  constructor(cause: unknown, readonly done: Readonly<Record<string, unknown>>) {
    super(cause instanceof Error ? plainMessage(cause) : String(cause), { cause });
    this.name = 'PartialWork';
  }
}
