import { setImmediate as nextTurn } from 'node:timers/promises';
import { PartialWork, type AnyAction, type Risk, type Trigger } from '../actions/contract.js';
import type { Config } from '../config/schema.js';
import { ValidationError } from '../errors.js';
import { errorMessage, type Logger } from '../log.js';
import type { RunFinisher } from './finish.js';
import { circuitRefusal } from './guards/circuit.js';
import { cooldownRefusal } from './guards/cooldown.js';
import { consumesAlert, idempotencyKey } from './guards/idempotency.js';
import { riskWindowGate } from './guards/risk-window.js';
import type { RunHistory } from './history.js';
import type { RunRecord } from './journal.js';
import { lockName, type Locks } from './locks.js';
import type { RemediationMetrics } from './metrics.js';
import type { Executor, RunSpec, RunSteps } from './executor.js';
import type { Job } from './queue.js';
import type { RunAbort } from './run-abort.js';
import type { AlertSilences } from './silences.js';
import type { StateStore } from './state/store.js';
import type { SuccessCache } from './success-cache.js';
import { ShutDown, Stop } from './stop.js';

// After a deadline, how long an action may take to notice before the engine stops waiting for it.
const ABANDON_AFTER_DEADLINE_MS = 5000;

type Step = <T>(work: Promise<T>) => Promise<T>;

export interface PipelineParts {
  readonly config: Readonly<Config>;
  readonly log: Logger;
  readonly executor: Executor;
  readonly locks: Locks;
  readonly history: RunHistory;
  readonly silences: AlertSilences;
  readonly metrics: RemediationMetrics;
  readonly store: StateStore;
  readonly finisher: RunFinisher;
  /** The shared success records (state.postgres); absent with the file store. */
  readonly successes?: SuccessCache | null;
  readonly now: () => number;
}

/**
 * One run, from the queue to its final record: the guard pipeline. Gate (risk, window, circuit)
 * for automatic runs, resolve, cooldown, lock, silence, then check, plan, run and verify, all
 * bounded by the run's deadline; a dry run stops after the plan.
 */
export class RunPipeline {
  constructor(private readonly parts: PipelineParts) {}

  /** `release` frees the run's queue slot once its work is done, before its final line is durable (see RunQueue). */
  async execute(job: Job, abort: RunAbort, release: () => void = () => undefined): Promise<RunRecord> {
    const { config, log, history, metrics, store, now } = this.parts;
    const { request, action } = job;
    const startedMs = now();
    const timeoutMs = (request.timeoutSeconds ?? config.remediation.timeoutSeconds) * 1000;
    const deadline = Date.now() + timeoutMs;
    // Made on first use: a storm's dry runs log nothing of their own, and a child logger per run
    // was 6 % of what outlived a scavenge at 1,000 alerts/s.
    let runLogger: Logger | undefined;
    const runLog = (): Logger => (runLogger ??= log.child({ runId: job.record.id, remediation: action.name }));
    // A long run's progress goes into its journal entry while it runs, and stays in the final one.
    let progress: Record<string, unknown> | undefined;
    const report = (detail: Readonly<Record<string, unknown>>) => {
      progress = { ...detail };
      record = { ...record, progress };
      void store.append(record).durable.catch((err: unknown) => runLog().warn({ err }, 'cannot journal the run\'s progress'));
    };
    const steps = this.parts.executor.open(new PipelineSpec(job.record.id, action, job.record.dryRun === true, deadline, request.trigger, runLog, abort, report));
    const timer = setTimeout(() => abort.abort(new Error(`deadline of ${timeoutMs / 1000}s passed`)), timeoutMs);
    let record: RunRecord = { ...job.record, status: 'running', startedAt: new Date(startedMs).toISOString() };
    metrics.running.inc({ remediation: action.name });
    const step: Step = (work) => untilAbandoned(work, abort);
    try {
      // A dry run's `running` line would say nothing its final line, a few milliseconds later in the
      // same file, does not; it was a third of the journal's writes in an alert storm of dry runs.
      // A crash leaves such a run `queued`, which the next start journals interrupted all the same.
      if (record.dryRun !== true) await journalBeforeActing(store, record);
      const risk = action.risk(job.params);
      record = { ...record, risk };
      const automatic = request.trigger === 'alert' || request.trigger === 'schedule';
      if (automatic) await this.refuseAutomatic(action.name, risk, request.allowRisk);
      if (record.dryRun) {
        record = await this.dryRun(record, action, steps, job.params, step);
      } else {
        const params = await step(steps.resolve(job.params));
        const lockSpec = action.lock(params, config);
        const lockKey = lockName(action.name, lockSpec);
        record = { ...record, lockKey };
        const cooldown = await history.cooldownRemaining(lockKey, now());
        if (automatic && cooldown > 0) throw Stop.from(cooldownRefusal(lockKey, config.remediation.cooldownSeconds, cooldown));
        const acquiring = this.parts.locks.acquire(lockSpec, record.id, lockKey);
        const lock = await step(acquiring).catch((err: unknown) => {
          // Given up on at the deadline: if the lock still arrives later, let it go at once.
          void acquiring.then((late) => late?.release(), () => undefined);
          throw err;
        });
        if (!lock) {
          const holder = await step(this.parts.locks.holder(lockSpec)).catch(() => null);
          throw new Stop('skipped', `locked: ${await this.holdersRun(holder)} holds the lock on ${lockKey}${holder ? ` (${holder})` : ''}`, 'lock');
        }
        const silenceId = await this.parts.silences.hold(request.alert, record, deadline, runLog());
        try {
          record = await this.act(record, steps, params, step, silenceId, (known) => { record = progress ? { ...known, progress } : known; });
          if (progress) record = { ...record, progress };
        } catch (err) {
          record = stopped(record, err, abort, runLog);
        } finally {
          // What ran is in the guards' memory before the lock goes, so the next run to take the
          // lock sees its cooldown (and a failure's count towards the circuit breaker).
          record = { ...record, finishedAt: new Date(now()).toISOString() };
          await this.parts.finisher.remember(record);
          if (record.status === 'success') await this.recordSuccess(action, params, record, runLog);
          if (silenceId) await this.parts.silences.release(silenceId, runLog());
          await lock.release().catch((err: unknown) => runLog().error({ err }, 'releasing the lock failed'));
        }
      }
    } catch (err) {
      record = stopped(record, err, abort, runLog);
    } finally {
      clearTimeout(timer);
      await steps.close(abort.aborted).catch((err: unknown) => runLog().error({ err }, 'cannot close the run\'s connections'));
      metrics.running.dec({ remediation: action.name });
    }
    // Refused for reasons of timing (window, cooldown...), failed or interrupted: a re-delivery of the alert may run later.
    if (request.alert && !consumesAlert(record)) await history.releaseAlert(idempotencyKey(request.alert, action.name), record.id).catch((err: unknown) => runLog().error({ err }, 'cannot release the alert claim'));
    // The finishing (the guards' memory, the metrics, the log line, the final journal line) waits
    // for the event loop's check phase, so that webhooks read in the same turn are acknowledged
    // first: the ack p99 at 1,000 alerts/s was lower in 7 of 8 alternated rounds
    // (docs/performance.md, "Runs finished after the turn's requests").
    await nextTurn();
    return this.parts.finisher.finish(record, {}, (now() - startedMs) / 1000, release);
  }

  /**
   * What the action's success leaves for the other replicas (Action.successRecord), kept while the
   * run still holds its lock. On the main thread: an executor thread has no state-store connection.
   * A failure to keep it is logged; the run succeeded all the same.
   */
  private async recordSuccess(action: AnyAction, params: unknown, record: RunRecord, runLog: () => Logger): Promise<void> {
    const { successes } = this.parts;
    if (!successes || !action.successRecord || !record.output || record.finishedAt === undefined) return;
    try {
      const success = action.successRecord(params, record.output);
      if (success) await successes.record({ remediation: action.name, subject: success.subject, detail: success.detail, atMs: Date.parse(record.finishedAt) });
    } catch (err) {
      runLog().error({ err }, 'cannot record the success in the state database; replicas that did not run it do not report it');
    }
  }

  /**
   * "another run of backup.pg_dump": the remediation of the run a lock's holder names, from the
   * journal. Remediations may share a lock (backup.pg_dump and backup.verify of one backup), and a
   * verify skipped for a dump's lock said "another run of backup.verify", sending operators after
   * a stuck verify that did not exist. "another run" when the journal cannot say.
   */
  private async holdersRun(holder: string | null): Promise<string> {
    const runId = holder === null ? undefined : /^run ([^\s,]+)/.exec(holder)?.[1];
    const run = runId === undefined ? undefined : await this.parts.store.get(runId).catch(() => undefined);
    return run ? `another run of ${run.remediation}` : 'another run';
  }

  /** Automatic runs stop at the risk gate, the maintenance window and the circuit breaker. */
  private async refuseAutomatic(remediation: string, risk: Risk, allowRisk: Risk | undefined): Promise<void> {
    const { config, history, now } = this.parts;
    const gate = riskWindowGate(risk, allowRisk, config.remediation.windows, now());
    if (gate) throw Stop.from(gate);
    if (await history.circuitOpen(remediation, now())) throw Stop.from(circuitRefusal(remediation, config.remediation.circuitBreaker));
  }

  /** A dry run: the exact plan, nothing executed, no lock, no silence and no cooldown (it acts on nothing). */
  private async dryRun(record: RunRecord, action: AnyAction, steps: RunSteps, input: unknown, step: Step): Promise<RunRecord> {
    const { params, check, plan } = await step(steps.dryRun(input));
    const lockKey = lockName(action.name, action.lock(params, this.parts.config));
    const reason = check.proceed ? 'dry run: nothing was executed' : `dry run: condition cleared (${check.reason}); a real run would be skipped`;
    return { ...record, lockKey, status: 'dry_run', check, plan: [...plan.steps], payload: plan.payload, reason };
  }

  /** Check, plan, run, verify. `progress` keeps what is known so far, so a failure is journalled with its plan. */
  private async act(
    record: RunRecord, steps: RunSteps, params: unknown, step: Step, silenceId: string | null, progress: (record: RunRecord) => void,
  ): Promise<RunRecord> {
    const withSilence = silenceId ? { ...record, silenceId } : record;
    progress(withSilence);
    const check = await step(steps.check(params));
    if (!check.proceed) return { ...withSilence, status: 'skipped', skipCode: 'condition', check, reason: `condition cleared: ${check.reason}` };
    const plan = await step(steps.plan(params));
    const planned = { ...withSilence, check, plan: [...plan.steps], payload: plan.payload };
    progress(planned);
    await journalBeforeActing(this.parts.store, planned);
    const output = await step(steps.run(params, plan.payload));
    // Known before the verification: a verification that fails to run (its server gone) must not
    // lose what the run did (the rows deleted, the keys unlinked) from the journal.
    const ran = { ...planned, output: output.detail };
    progress(ran);
    const verification = await step(steps.verify(params, check, output));
    const verified = { ...ran, verification };
    return verification.ok
      ? { ...verified, status: 'success' }
      : { ...verified, status: 'failure', error: `verification failed: ${verification.detail}` };
  }
}

/**
 * A run as its executor sees it. A class, not an object literal, for the same reason as the
 * executor's RunContext: `log` is a getter (the run's child logger is made when something logs),
 * and V8 promoted a good share of literals with a getter in them at their first scavenge.
 */
class PipelineSpec implements RunSpec {
  constructor(
    readonly runId: string,
    readonly action: AnyAction,
    readonly dryRun: boolean,
    readonly deadline: number,
    readonly trigger: Trigger,
    private readonly runLog: () => Logger,
    readonly abort: RunAbort,
    readonly progress: (detail: Readonly<Record<string, unknown>>) => void,
  ) {}

  get log(): Logger {
    return this.runLog();
  }
}

/** The run ended early: a refusal, a rejection, a shutdown or a failure. The journal's `error` is shown by /runs and `upkeep run`, so errorMessage masks secrets. */
function stopped(record: RunRecord, err: unknown, abort: RunAbort, log: () => Logger): RunRecord {
  if (err instanceof Stop) return { ...record, status: err.status, reason: err.reason, skipCode: err.code };
  if (err instanceof ValidationError) return { ...record, status: 'rejected', reason: err.message };
  // What a run that failed part-way had done by then is its output.
  const done = err instanceof PartialWork ? { output: { ...err.done } } : {};
  if (err instanceof ShutDown || (abort.aborted && abort.reason instanceof ShutDown)) {
    return { ...record, ...done, status: 'interrupted', reason: 'upkeep shut down during the run', error: errorMessage(err) };
  }
  // The 'run finished' line carries the message; the stack is for whoever turns on debug.
  log().debug({ err }, 'remediation failed');
  const message = errorMessage(err);
  // The abort's reason says why the step stopped; a step that rejects with that very reason (the
  // abandoned one; a connection given up) is not said twice.
  const reason = abort.aborted ? errorMessage(abort.reason) : undefined;
  return { ...record, ...done, status: 'failure', error: reason === undefined || reason === message ? message : `${reason}: ${message}` };
}

/**
 * Journals a state the run's next steps wait for. A run that a peer journalled interrupted
 * meanwhile (this replica stalled past its lease, and the run's alert was given back) goes no
 * further: what it would do next may already have been done by a re-delivery.
 */
async function journalBeforeActing(store: StateStore, record: RunRecord): Promise<void> {
  if (await store.append(record).durable === 'late') {
    throw new Stop('cancelled', 'a peer journalled this run interrupted while this replica stalled past its lease; it went no further');
  }
}

/** Resolves with the work, or rejects once the run has been aborted for a grace period the work ignored. */
function untilAbandoned<T>(work: Promise<T>, abort: RunAbort): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      const waitMs = abort.reason instanceof ShutDown ? abort.reason.abandonAfterMs ?? ABANDON_AFTER_DEADLINE_MS : ABANDON_AFTER_DEADLINE_MS;
      timer = setTimeout(() => reject(abort.reason), waitMs);
    };
    if (abort.aborted) onAbort();
    const stopListening = abort.onAbort(onAbort);
    work.then(resolve, reject).finally(() => {
      clearTimeout(timer);
      stopListening();
    });
  });
}
