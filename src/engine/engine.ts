import { Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import { errorMessage, type Logger } from '../log.js';
import { ACTIONS } from '../actions/registry.js';
import { SilenceClient } from '../triggers/alertmanager-payload.js';
import { Connections } from '../systems/connections.js';
import { RunConnections } from './run-connections.js';
import { consumesAlert, idempotencyKey, riskGate, RunHistory } from './history.js';
import { Locks, lockName } from './locks.js';
import { RemediationMetrics } from './metrics.js';
import { ValidationError, type ActionContext, type AnyAction, type RunRecord, type RunRequest, type Risk, type RunStatus, type RunSubmitter, type SkipCode, type Trigger } from '../actions/contract.js';
import { openWindow } from './windows.js';
import { HOST } from './state/owner.js';
import { openStateStore } from './state/open.js';
import { newRunId } from './state/run-id.js';
import type { RunFilter, RunPage, RunPageJson, StateStore } from './state/store.js';

export interface EngineOptions {
  config: Readonly<Config>;
  log: Logger;
  /** The app's registry; a private one when omitted (the CLI). */
  registry?: Registry;
  /** Defaults to every known remediation. */
  actions?: readonly AnyAction[];
  /** The clock, in epoch milliseconds (tests move it to open and close windows). */
  now?: () => number;
}

interface Job {
  record: RunRecord;
  request: RunRequest;
  action: AnyAction;
  /** What the action's params schema made of request.params (set once the run passes its screen). */
  params: unknown;
  settle: (record: RunRecord) => void;
  /** Set by a resolved alert while the job was still claiming its alert. */
  cancelled?: string;
}

/**
 * What submit() did. `journalled` resolves, with the run's status then, once the request is in the
 * journal: `queued`, or a final status when it was settled at once (duplicate alert, rejected by its
 * screen, shutting down); `done` then holds the reason.
 */
export interface Submitted { runId: string; done: Promise<RunRecord>; journalled: Promise<RunStatus> }

/** Ends the current step of a run as skipped. */
class Stop extends Error {
  constructor(readonly status: 'skipped', readonly reason: string, readonly code: SkipCode) {
    super(reason);
  }
}

/** The queue holds remediation.maxQueued runs already: the request is refused whole and nothing is journalled. */
export class QueueFull extends Error {
  constructor(readonly limit: number) {
    super(`the run queue is full: at most ${limit} runs may wait (remediation.maxQueued); retry later`);
    this.name = 'QueueFull';
  }
}

class ShutDown extends Error {}

// After a deadline, how long an action may take to notice before the engine stops waiting for it.
const ABANDON_AFTER_DEADLINE_MS = 5000;
const SILENCE_MARGIN_MS = 60_000;

/**
 * Every trigger (alert, manual POST, CLI, schedule) submits here. The engine owns the guards:
 * validation, idempotency, risk gates and windows, circuit breaker, cooldown, locks, check before
 * and verify after, dry-run, deadlines, silences and the journal. Actions only know their system.
 */
export class Engine implements RunSubmitter {
  private readonly actions: ReadonlyMap<string, AnyAction>;
  private readonly queue: Job[] = [];
  /** Alert runs whose claim the store has not answered yet. */
  private readonly claiming = new Set<Job>();
  private readonly admitting = new Set<Promise<unknown>>();
  /** Runs submitted but neither queued nor settled yet: they count against remediation.maxQueued. */
  private pending = 0;
  private readonly active = new Map<string, { controller: AbortController; done: Promise<void> }>();
  private readonly connections: Connections;
  private readonly locks: Locks;
  private readonly history: RunHistory;
  private readonly silences: SilenceClient | null;
  private readonly now: () => number;
  readonly metrics: RemediationMetrics;
  private closing = false;

  private constructor(private readonly options: EngineOptions, private readonly store: StateStore) {
    const { config } = options;
    this.actions = new Map((options.actions ?? ACTIONS).map((action) => [action.name, action]));
    this.connections = new Connections(config);
    this.locks = new Locks(this.connections);
    this.history = new RunHistory(config.remediation, store.guards);
    this.silences = config.alertmanager ? new SilenceClient(config.alertmanager.url) : null;
    this.now = options.now ?? Date.now;
    this.metrics = new RemediationMetrics(options.registry ?? new Registry(), [...this.actions.keys()],
      (remediation) => this.history.circuitOpen(remediation, this.now()));
  }

  /** Opens the state store, marks runs a crash left behind as interrupted, and restores the last-success metric. */
  static async create(options: EngineOptions): Promise<Engine> {
    const now = options.now ?? Date.now;
    const store = await openStateStore(options.config, options.log, now);
    const engine = new Engine(options, store);
    // A journal from before the store kept the guards' memory: rebuild it from the records, once.
    await engine.history.replay(store.legacyRecords());
    for (const { file, lines } of store.skipped) options.log.warn({ file, lines }, 'journal lines could not be read and were skipped');
    const interrupted = await store.recoverInterrupted(new Date(engine.now()));
    for (const record of interrupted) {
      options.log.warn({ runId: record.id, remediation: record.remediation }, 'run was left unfinished by a previous upkeep; journalled as interrupted');
      engine.metrics.finished(record.remediation, record.status, null, engine.now());
    }
    // The last success survives a restart, so "remediation has not succeeded for N days" alerts keep working.
    for (const [remediation, at] of await store.guards.lastSuccesses()) {
      if (engine.actions.has(remediation)) engine.metrics.lastSuccess.set({ remediation }, at / 1000);
    }
    return engine;
  }

  listActions(): AnyAction[] {
    return [...this.actions.values()];
  }

  action(name: string): AnyAction | undefined {
    return this.actions.get(name);
  }

  get(id: string): Promise<RunRecord | undefined> {
    return this.store.get(id);
  }

  /** Newest first, a page at a time: pass `next` back as `cursor`. */
  list(filter: RunFilter, cursor: string | null = null, limit = 100): Promise<RunPage> {
    return this.store.list(filter, cursor, limit);
  }

  /** The same page with each run as its JSON text, for GET /runs. */
  listJson(filter: RunFilter, cursor: string | null, limit: number): Promise<RunPageJson> {
    return this.store.listJson(filter, cursor, limit);
  }

  /**
   * Parses params against the action's schema and runs its screen (what the config alone refuses):
   * the parsed params, or the reason a run with them is rejected before it is queued.
   */
  screen(action: AnyAction, params: unknown, trigger: Trigger): { params: unknown } | { reason: string } {
    const parsed = action.params.safeParse(params);
    if (!parsed.success) return { reason: `invalid params: ${parsed.error.issues.map((issue) => `${issue.path.join('.') || '(params)'}: ${issue.message}`).join('; ')}` };
    try {
      action.screen?.(parsed.data, this.options.config, trigger);
    } catch (err) {
      if (err instanceof ValidationError) return { reason: err.message };
      throw err;
    }
    return { params: parsed.data };
  }

  /**
   * Queues a run, or settles it at once: unknown remediation, duplicate alert, shutting down, or
   * rejected by its screen (then nothing is queued). An acknowledged request is in the journal once
   * `journalled` resolves, so it is never lost when upkeep dies; its fsync completes right after.
   * Throws QueueFull, having recorded nothing, when remediation.maxQueued runs are already waiting.
   */
  submit(request: RunRequest): Submitted {
    const nowMs = this.now();
    const record: RunRecord = {
      id: newRunId(nowMs), remediation: request.remediation, trigger: request.trigger, status: 'queued', params: request.params,
      queuedAt: new Date(nowMs).toISOString(), dryRun: this.options.config.remediation.dryRun || request.dryRun === true,
      host: HOST, pid: process.pid,
      ...(request.alert ? { alert: request.alert } : {}), ...(request.source ? { source: request.source } : {}),
    };
    const settled = (done: Promise<RunRecord>) => ({ runId: record.id, done, journalled: done.then((final) => final.status) });
    const action = this.actions.get(request.remediation);
    if (this.closing) return settled(this.finish(record, { status: 'cancelled', reason: 'upkeep is shutting down' }));
    if (!action) return settled(this.finish(record, { status: 'rejected', reason: `unknown remediation "${request.remediation}"` }));
    // Checked before the alert is claimed, so a refused alert is not taken for a duplicate when it comes again.
    if (this.queueRoom() < 1) throw new QueueFull(this.options.config.remediation.maxQueued);
    let settle: (record: RunRecord) => void = () => undefined;
    const done = new Promise<RunRecord>((resolve) => { settle = resolve; });
    const job: Job = { record, request, action, params: undefined, settle };
    this.pending += 1;
    const journalled = this.admit(job);
    this.admitting.add(journalled);
    const admitted = () => { this.admitting.delete(journalled); };
    journalled.then(admitted, admitted);
    return { runId: record.id, done, journalled };
  }

  /** How many more runs the queue takes before submit throws QueueFull. */
  queueRoom(): number {
    return Math.max(0, this.options.config.remediation.maxQueued - this.queue.length - this.pending);
  }

  /**
   * Claims the job's alert (a re-delivery settles as a duplicate), screens it, then queues it once
   * its line is written.
   */
  private async admit(job: Job): Promise<RunStatus> {
    let pending = true;
    const leave = () => {
      if (pending) this.pending -= 1;
      pending = false;
    };
    try {
      return await this.claimScreenQueue(job, leave);
    } finally {
      leave();
    }
  }

  private async claimScreenQueue(job: Job, leave: () => void): Promise<RunStatus> {
    const { record, request, action } = job;
    if (request.alert) {
      const key = idempotencyKey(request.alert, request.remediation);
      this.claiming.add(job);
      let handledBy: string | undefined;
      try {
        handledBy = await this.history.claimAlert(key, record.id, Date.parse(record.queuedAt));
      } catch (err) {
        // Not acknowledged: the sender retries, and nothing ran without its claim.
        job.settle({ ...record, status: 'cancelled', reason: `the alert could not be claimed: ${errorText(err)}`, finishedAt: new Date(this.now()).toISOString() });
        throw err;
      } finally {
        this.claiming.delete(job);
      }
      if (handledBy !== undefined) {
        const duplicate = await this.finish(record, { status: 'duplicate', duplicateOf: handledBy, reason: `alert already handled by run ${handledBy}` });
        job.settle(duplicate);
        return duplicate.status;
      }
      const stopped = job.cancelled ?? (this.closing ? 'upkeep is shutting down' : undefined);
      if (stopped !== undefined) {
        await this.history.releaseAlert(key, record.id);
        const cancelled = await this.finish(record, { status: 'cancelled', reason: stopped });
        job.settle(cancelled);
        return cancelled.status;
      }
    }
    // Refused by the config alone: journalled and counted as rejected, never queued. The alert stays
    // claimed, so its re-deliveries are duplicates rather than rejections counted again.
    const screened = this.screen(action, request.params, request.trigger);
    if ('reason' in screened) {
      const rejected = await this.finish(record, { status: 'rejected', reason: screened.reason });
      job.settle(rejected);
      return rejected.status;
    }
    job.params = screened.params;
    leave();
    this.queue.push(job);
    // The request is acknowledged once its line is in the file (it survives upkeep being killed);
    // the fsync follows in the same group commit without holding up the acknowledgement.
    const { written, durable } = this.store.append(record);
    durable
      .catch((err: unknown) => this.options.log.error({ err, runId: record.id }, 'cannot write the journal'))
      .finally(() => this.pump());
    await written;
    return 'queued';
  }

  /** A resolved alert: its runs that have not started yet are cancelled. */
  cancelQueued(fingerprint: string, reason: string): RunRecord[] {
    const cancelled: RunRecord[] = [];
    for (const job of this.claiming) {
      if (job.record.alert?.fingerprint !== fingerprint || job.cancelled !== undefined) continue;
      // Still claiming: admit() journals it as cancelled once the claim is answered.
      job.cancelled = reason;
      cancelled.push({ ...job.record, status: 'cancelled', reason });
    }
    for (const job of [...this.queue]) {
      if (job.record.alert?.fingerprint !== fingerprint) continue;
      this.queue.splice(this.queue.indexOf(job), 1);
      const record = { ...job.record, status: 'cancelled' as const, reason, finishedAt: new Date(this.now()).toISOString() };
      cancelled.push(record);
      void this.finish(record, {}).then(job.settle);
    }
    return cancelled;
  }

  private pump(): void {
    while (!this.closing && this.active.size < this.options.config.remediation.concurrency) {
      const job = this.queue.shift();
      if (!job) return;
      const controller = new AbortController();
      const done = this.execute(job, controller).then(job.settle);
      this.active.set(job.record.id, { controller, done });
      void done.finally(() => {
        this.active.delete(job.record.id);
        this.pump();
      });
    }
  }

  private async execute(job: Job, controller: AbortController): Promise<RunRecord> {
    const { config, log } = this.options;
    const { request, action } = job;
    const startedMs = this.now();
    const timeoutMs = (request.timeoutSeconds ?? config.remediation.timeoutSeconds) * 1000;
    const deadline = Date.now() + timeoutMs;
    const connections = new RunConnections(config, this.connections, deadline, config.remediation.lockTimeoutSeconds * 1000, log);
    const runLog = log.child({ runId: job.record.id, remediation: action.name });
    const context: ActionContext = { config, log: runLog, connections, signal: controller.signal, deadline, trigger: request.trigger };
    // At the deadline (or shutdown) the work is cancelled where it runs, not just abandoned here.
    controller.signal.addEventListener('abort', () => { void connections.cancelBackends(); }, { once: true });
    const timer = setTimeout(() => controller.abort(new Error(`deadline of ${timeoutMs / 1000}s passed`)), timeoutMs);
    let record: RunRecord = { ...job.record, status: 'running', startedAt: new Date(startedMs).toISOString() };
    this.metrics.running.inc({ remediation: action.name });
    const step = <T>(work: Promise<T>) => untilAbandoned(work, controller.signal);
    try {
      await this.store.append(record).durable;
      const risk = action.risk(job.params);
      record = { ...record, risk };
      const automatic = request.trigger === 'alert' || request.trigger === 'schedule';
      if (automatic) await this.refuseAutomatic(action.name, risk, request);
      const params = await step(action.resolve(job.params, context));
      const lockSpec = action.lock(params, context.config);
      const lockKey = lockName(action.name, lockSpec);
      record = { ...record, lockKey };
      const cooldown = await this.history.cooldownRemaining(lockKey, this.now());
      if (automatic && !record.dryRun && cooldown > 0) throw new Stop('skipped', `cooldown: ${lockKey} ran less than ${config.remediation.cooldownSeconds}s ago; ${cooldown}s left`, 'cooldown');
      if (record.dryRun) {
        record = await this.dryRun(record, action, params, context, step);
      } else {
        const acquiring = this.locks.acquire(lockSpec, deadline - Date.now() + SILENCE_MARGIN_MS);
        const lock = await step(acquiring).catch((err: unknown) => {
          // Given up on at the deadline: if the lock still arrives later, let it go at once.
          void acquiring.then((late) => late?.release(), () => undefined);
          throw err;
        });
        if (!lock) throw new Stop('skipped', `locked: another run of ${action.name} holds the lock on ${lockKey}`, 'lock');
        const silenceId = await this.silence(request, record, deadline, runLog);
        try {
          record = await this.act(record, action, params, context, step, silenceId, (progress) => { record = progress; });
        } finally {
          if (silenceId) await this.expireSilence(silenceId, runLog);
          await lock.release().catch((err: unknown) => runLog.error({ err }, 'releasing the lock failed'));
        }
      }
    } catch (err) {
      record = this.stopped(record, err, controller.signal, runLog);
    } finally {
      clearTimeout(timer);
      await connections.close();
      this.metrics.running.dec({ remediation: action.name });
    }
    // Refused for reasons of timing (window, cooldown...): a re-delivery of the alert may run later.
    if (request.alert && !consumesAlert(record)) await this.history.releaseAlert(idempotencyKey(request.alert, action.name), record.id).catch((err: unknown) => runLog.error({ err }, 'cannot release the alert claim'));
    return this.finish(record, {}, (this.now() - startedMs) / 1000);
  }

  /** The run ended early: a refusal, a rejection, a shutdown or a failure. */
  private stopped(record: RunRecord, err: unknown, signal: AbortSignal, log: Logger): RunRecord {
    if (err instanceof Stop) return { ...record, status: err.status, reason: err.reason, skipCode: err.code };
    if (err instanceof ValidationError) return { ...record, status: 'rejected', reason: err.message };
    if (err instanceof ShutDown || (signal.aborted && signal.reason instanceof ShutDown)) {
      return { ...record, status: 'interrupted', reason: 'upkeep shut down during the run', error: errorText(err) };
    }
    // The 'run finished' line carries the message; the stack is for whoever turns on debug.
    log.debug({ err }, 'remediation failed');
    return { ...record, status: 'failure', error: signal.aborted ? `${errorText(signal.reason)}: ${errorText(err)}` : errorText(err) };
  }

  /** A dry run: the exact plan, nothing executed, no lock and no silence. */
  private async dryRun(record: RunRecord, action: AnyAction, params: unknown, context: ActionContext, step: <T>(work: Promise<T>) => Promise<T>): Promise<RunRecord> {
    const check = await step(action.check(params, context));
    const plan = await step(action.plan(params, context));
    const reason = check.proceed ? 'dry run: nothing was executed' : `dry run: condition cleared (${check.reason}); a real run would be skipped`;
    return { ...record, status: 'dry_run', check, plan, reason };
  }

  /** Automatic runs stop at the risk gate, the maintenance window and the circuit breaker. */
  private async refuseAutomatic(remediation: string, risk: Risk, request: RunRequest): Promise<void> {
    const gate = riskGate(risk, request.allowRisk, openWindow(this.options.config.remediation.windows, this.now()));
    if (gate) throw new Stop('skipped', gate.reason, gate.code);
    if (await this.history.circuitOpen(remediation, this.now())) {
      const { failures, windowSeconds } = this.options.config.remediation.circuitBreaker;
      throw new Stop('skipped', `circuit open: ${remediation} failed ${failures} or more times in the last ${windowSeconds}s; automatic runs are refused until it succeeds (run it manually) or the failures age out`, 'circuit');
    }
  }

  /** Check, plan, run, verify. `progress` keeps what is known so far, so a failure is journalled with its plan. */
  private async act(
    record: RunRecord, action: AnyAction, params: unknown, context: ActionContext,
    step: <T>(work: Promise<T>) => Promise<T>, silenceId: string | null, progress: (record: RunRecord) => void,
  ): Promise<RunRecord> {
    const withSilence = silenceId ? { ...record, silenceId } : record;
    progress(withSilence);
    const check = await step(action.check(params, context));
    if (!check.proceed) return { ...withSilence, status: 'skipped', skipCode: 'condition', check, reason: `condition cleared: ${check.reason}` };
    const plan = await step(action.plan(params, context));
    progress({ ...withSilence, check, plan });
    await this.store.append({ ...withSilence, check, plan }).durable;
    const output = await step(action.run(params, plan, context));
    const verification = await step(action.verify(params, check, output, context));
    const verified = { ...withSilence, check, plan, output: output.detail, verification };
    return verification.ok
      ? { ...verified, status: 'success' }
      : { ...verified, status: 'failure', error: `verification failed: ${verification.detail}` };
  }

  private async silence(request: RunRequest, record: RunRecord, deadline: number, log: Logger): Promise<string | null> {
    if (!this.silences || !request.alert) return null;
    try {
      const id = await this.silences.silence(request.alert.labels, new Date(deadline + SILENCE_MARGIN_MS), `upkeep is running ${record.remediation} (run ${record.id})`);
      log.info({ silenceId: id }, 'alert silenced while the remediation runs');
      return id;
    } catch (err) {
      // A down Alertmanager must not stop the remediation; the alert just keeps notifying.
      log.warn({ err }, 'could not create a silence');
      return null;
    }
  }

  private async expireSilence(silenceId: string, log: Logger): Promise<void> {
    try {
      await this.silences?.expire(silenceId);
    } catch (err) {
      log.warn({ err, silenceId }, 'could not expire the silence; it ends by itself shortly after the run deadline');
    }
  }

  private async finish(record: RunRecord, changes: Partial<RunRecord>, durationSeconds: number | null = null): Promise<RunRecord> {
    const finished: RunRecord = { ...record, ...changes, finishedAt: record.finishedAt ?? new Date(this.now()).toISOString() };
    const executed = finished.status === 'success' || finished.status === 'failure' ? durationSeconds : null;
    try {
      await this.history.recordFinish(finished);
    } catch (err) {
      this.options.log.error({ err, runId: finished.id }, 'cannot record the run in the guards\' memory');
    }
    this.metrics.finished(finished.remediation, finished.status, executed, this.now());
    logFinished(this.options.log, finished, durationSeconds);
    try {
      await this.store.append(finished).durable;
    } catch (err) {
      this.options.log.error({ err, runId: finished.id }, 'cannot write the journal');
    }
    return finished;
  }

  /** Cancels queued runs, interrupts running ones, and closes the journal and clients. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const job of this.queue.splice(0)) {
      void this.finish({ ...job.record, status: 'cancelled', reason: 'upkeep shut down before the run started' }, {}).then(job.settle);
    }
    for (const { controller } of this.active.values()) controller.abort(new ShutDown('upkeep shut down'));
    await Promise.all([...this.active.values()].map(({ done }) => done));
    await Promise.allSettled([...this.admitting]);
    await this.store.close();
    await this.connections.close();
  }
}

const FINISHED_LEVEL: Readonly<Record<RunRecord['status'], 'info' | 'warn' | 'error'>> = {
  queued: 'info', running: 'info', success: 'info', dry_run: 'info', skipped: 'info', duplicate: 'info', cancelled: 'info',
  rejected: 'warn', failure: 'error', interrupted: 'error',
};

/** One line per finished run: what ran, on what, how it ended and, when it did not succeed, why. */
function logFinished(log: Logger, record: RunRecord, durationSeconds: number | null): void {
  const why = record.error ?? record.reason;
  log[FINISHED_LEVEL[record.status]]({
    runId: record.id, remediation: record.remediation, trigger: record.trigger, target: record.lockKey ?? null, status: record.status,
    durationSeconds: durationSeconds === null ? null : Math.round(durationSeconds * 1000) / 1000,
    ...(record.status !== 'success' && why !== undefined ? { reason: why } : {}),
  }, 'run finished');
}

/** The journal's `error`: shown by /runs and `upkeep run`, so secrets are masked here, once. */
function errorText(err: unknown): string {
  return errorMessage(err);
}

/** Resolves with the work, or rejects once the signal has been aborted for a grace period the work ignored. */
function untilAbandoned<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => { timer = setTimeout(() => reject(signal.reason), ABANDON_AFTER_DEADLINE_MS); };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    });
  });
}
