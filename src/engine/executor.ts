import type { ActionContext, AnyAction, CheckResult, Plan, RunOutput, Trigger, VerifyResult } from '../actions/contract.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Connections } from '../systems/connections.js';
import type { RunAbort } from './run-abort.js';
import { RunConnections } from './run-connections.js';

/** What the pipeline tells an executor about one run. */
export interface RunSpec {
  readonly runId: string;
  readonly action: AnyAction;
  readonly dryRun: boolean;
  /** Epoch milliseconds by which the run must be finished. */
  readonly deadline: number;
  readonly trigger: Trigger;
  readonly log: Logger;
  /** Aborted at the deadline or at shutdown: the run's work is cancelled where it runs. */
  readonly abort: RunAbort;
  /** A long run's progress, kept in its journal entry. */
  readonly progress: (detail: Readonly<Record<string, unknown>>) => void;
}

/** What a dry run learns: the params as resolved, the check and the plan. */
export interface DryRunResult {
  readonly params: unknown;
  readonly check: CheckResult;
  readonly plan: Plan<unknown>;
}

/** An action's steps for one run, with the run's context (connections, memo, signal) bound. */
export interface RunSteps {
  /**
   * Resolve, check and plan, then the run's connections are let go: a dry run is one message to
   * the executor thread and back instead of four (resolve, check, plan, close), and the thread's
   * round trips were most of what a flood of dry runs waited for. close() after it does nothing.
   */
  dryRun(params: unknown): Promise<DryRunResult>;
  resolve(params: unknown): Promise<unknown>;
  check(params: unknown): Promise<CheckResult>;
  plan(params: unknown): Promise<Plan<unknown>>;
  run(params: unknown, payload: unknown): Promise<RunOutput>;
  verify(params: unknown, before: CheckResult, output: RunOutput): Promise<VerifyResult>;
  /** Lets the run's connections go (a dry run's back to their pool, unless `aborted`). */
  close(aborted: boolean): Promise<void>;
}

/**
 * Where the actions' steps execute: on the engine's own event loop (InlineExecutor), or on a
 * worker thread (ThreadExecutor, remediation.executor: thread), so that acknowledging a webhook
 * never waits behind a run's catalog reads. The guards (journal, locks, cooldown, circuit) stay
 * in the pipeline either way.
 */
export interface Executor {
  open(spec: RunSpec): RunSteps;
  close(): Promise<void>;
}

type CloseRun = RunSteps['close'];

/**
 * The context of one run as its action sees it. A class, not an object literal: the signal is a
 * getter, made when an action asks for it (see RunAbort; a dry run's catalog reads do not), and V8
 * promoted a good share of literals with a getter in them at their first scavenge.
 */
class RunContext implements ActionContext {
  readonly memo = new Map<string, Promise<unknown>>();

  constructor(
    readonly config: Readonly<Config>,
    readonly log: Logger,
    readonly connections: Connections,
    private readonly abort: RunAbort,
    readonly deadline: number,
    readonly trigger: Trigger,
    readonly now: () => number,
    readonly progress: (detail: Readonly<Record<string, unknown>>) => void,
    readonly dryRun: boolean,
  ) {}

  get signal(): AbortSignal {
    return this.abort.signal;
  }
}

/** The run's context as an action sees it (its connections, its memo, its signal), and how to close it. */
export function runContext(config: Readonly<Config>, shared: Connections, spec: RunSpec, now: () => number): { context: ActionContext; close: CloseRun } {
  const { runId, dryRun, deadline, trigger, log, abort, progress } = spec;
  const connections = new RunConnections(config, shared, deadline, config.remediation.lockTimeoutSeconds * 1000, log, runId, dryRun, abort);
  // At the deadline (or shutdown) the work is cancelled where it runs, not just abandoned here.
  const stopListening = abort.onAbort(() => { void connections.cancelBackends(); });
  const context = new RunContext(config, log, connections, abort, deadline, trigger, now, progress, dryRun);
  const close: CloseRun = (aborted) => {
    // The queue holds the abort until the run's final line is durable: a listener left on it
    // would keep the run's connections, context and logger alive that long too.
    stopListening();
    return connections.close(aborted);
  };
  return { context, close };
}

/** The steps of one action bound to one context. */
export function boundSteps(action: AnyAction, context: ActionContext, close: CloseRun, abort: RunAbort): RunSteps {
  return {
    dryRun: async (input) => {
      try {
        const params = await action.resolve(input, context);
        const check = await action.check(params, context);
        return { params, check, plan: await action.plan(params, context) };
      } finally {
        await close(abort.aborted);
      }
    },
    resolve: (params) => action.resolve(params, context),
    check: (params) => action.check(params, context),
    plan: (params) => action.plan(params, context),
    run: (params, payload) => action.run(params, payload, context),
    verify: (params, before, output) => action.verify(params, before, output, context),
    close,
  };
}

/** Runs the steps on the engine's event loop: for an engine given its own actions or clock (tests), and remediation.executor: inline. */
export class InlineExecutor implements Executor {
  constructor(private readonly config: Readonly<Config>, private readonly shared: Connections, private readonly now: () => number) {}

  open(spec: RunSpec): RunSteps {
    const { context, close } = runContext(this.config, this.shared, spec, this.now);
    return boundSteps(spec.action, context, close, spec.abort);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
