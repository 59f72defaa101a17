import { Registry } from '../prom.js';
import { ACTIONS } from '../actions/registry.js';
import type { AnyAction, Trigger } from '../actions/contract.js';
import type { Config } from '../config/schema.js';
import { ValidationError } from '../errors.js';
import { errorMessage, type Logger } from '../log.js';
import { describeIssues } from '../zod-issues.js';
import { unknownNameHint } from '../names.js';
import { Connections } from '../systems/connections.js';
import { RunFinisher } from './finish.js';
import { InlineExecutor, type Executor } from './executor.js';
import { ThreadExecutor } from './executor-thread.js';
import { idempotencyKey } from './guards/idempotency.js';
import { orphanedClaim } from './guards/orphaned-claim.js';
import { RunHistory } from './history.js';
import { InFlight } from './in-flight.js';
import type { RunRecord, RunStatus } from './journal.js';
import { LeaseKeeper, RunLiveness } from './leases.js';
import { Locks } from './locks.js';
import { RemediationMetrics } from './metrics.js';
import { RunPipeline } from './pipeline.js';
import { QueueFull, RunQueue, type Job } from './queue.js';
import { recover } from './recovery.js';
import { AlertSilences } from './silences.js';
import { HOST } from './state/owner.js';
import { openStateStore, retentionMsOf } from './state/open.js';
import { newRunId } from './state/run-id.js';
import type { RunFilter, RunPage, RunPageJson, StateStore, SuccessRecord } from './state/store.js';
import { SuccessCache } from './success-cache.js';
import { ShutDown } from './stop.js';
import { YoungGeneration } from './young-generation.js';
import type { RunRequest, RunSubmitter, Submitted, TickClaims } from './submitter.js';

export { QueueFull };
export type { Submitted };

export interface EngineOptions {
  config: Readonly<Config>;
  log: Logger;
  /** The app's registry; a private one when omitted (the CLI). */
  registry?: Registry;
  /** Defaults to every known remediation. */
  actions?: readonly AnyAction[];
  /** The clock, in epoch milliseconds (tests move it to open and close windows). */
  now?: () => number;
  /** How often final lines the journal refused are offered again (5 s; tests shorten it). */
  journalRetryMs?: number;
}

/**
 * Every trigger (alert, manual POST, CLI, schedule) submits here. The engine admits a run (claims
 * its alert, screens its params, journals it) and queues it; the pipeline runs it through every
 * guard. Actions only know their system.
 */
export class Engine implements RunSubmitter, TickClaims {
  private readonly actions: ReadonlyMap<string, AnyAction>;
  private readonly queue: RunQueue;
  /** Runs being admitted, by run id: claiming their alert, or writing their `queued` line. */
  private readonly claiming = new InFlight<string, Job>();
  private readonly admitting = new InFlight<string, Promise<unknown>>();
  private readonly connections: Connections;
  private readonly history: RunHistory;
  private readonly finisher: RunFinisher;
  private readonly executor: Executor;
  private readonly now: () => number;
  readonly metrics: RemediationMetrics;
  private closing = false;
  private runsStopped: Promise<void> | undefined;
  private closed: Promise<void> | undefined;
  private leases: LeaseKeeper | null = null;
  /** state.retention: how long the journal keeps a run. */
  private readonly retentionMs: number;
  private readonly youngGeneration: YoungGeneration;
  /** The shared success records, cached (state.postgres); null with the file store. */
  private readonly successCache: SuccessCache | null;
  private readonly silences: AlertSilences;

  private constructor(private readonly options: EngineOptions, private readonly store: StateStore) {
    const { config, log } = options;
    this.actions = new Map((options.actions ?? ACTIONS).map((action) => [action.name, action]));
    this.connections = new Connections(config);
    this.history = new RunHistory(config.remediation, store.guards);
    this.now = options.now ?? Date.now;
    this.retentionMs = retentionMsOf(config.state);
    this.metrics = new RemediationMetrics(options.registry ?? new Registry(), [...this.actions.keys()],
      (remediation) => this.history.circuitOpen(remediation, this.now()));
    // The registry's actions on the real clock may run on the executor thread; actions or a clock
    // given by the caller (tests) exist only on this thread.
    const threaded = config.remediation.executor === 'thread' && options.actions === undefined && options.now === undefined;
    this.youngGeneration = new YoungGeneration({ log });
    this.executor = threaded ? new ThreadExecutor(config, log, this.youngGeneration) : new InlineExecutor(config, this.connections, this.now);
    this.finisher = new RunFinisher(this.history, this.metrics, store, log, this.now, options.journalRetryMs);
    this.successCache = store.successes ? new SuccessCache(store.successes, log) : null;
    this.silences = new AlertSilences(config.alertmanager?.url);
    const pipeline = new RunPipeline({
      config, log, executor: this.executor, locks: new Locks(this.connections, { redisTtlMs: config.remediation.redisLockTtlSeconds * 1000, liveness: new RunLiveness(store), log }), history: this.history,
      silences: this.silences, metrics: this.metrics, store, finisher: this.finisher, successes: this.successCache, now: this.now,
    });
    this.queue = new RunQueue(config.remediation, (job, abort, release) => pipeline.execute(job, abort, release));
  }

  /**
   * Opens the state store, marks runs a crash left behind as interrupted, restores the last-success
   * metric and, with a shared store, takes this process's lease (see leases.ts).
   */
  static async create(options: EngineOptions): Promise<Engine> {
    const store = await openStateStore(options.config, options.log, options.now ?? Date.now);
    const engine = new Engine(options, store);
    const { history, metrics, now, silences } = engine;
    await recover({ store, history, metrics, silences, remediations: new Set(engine.actions.keys()), log: options.log, now });
    const leaseMs = (options.config.state.postgres?.leaseSeconds ?? 0) * 1000;
    engine.leases = await LeaseKeeper.start({ store, history, metrics, silences, log: options.log, now, leaseMs });
    engine.youngGeneration.start();
    return engine;
  }

  /**
   * The remediation's newest success per subject (Action.successRecord) as the shared state
   * store has them, cached; empty with the file store.
   */
  async successes(remediation: string): Promise<ReadonlyMap<string, SuccessRecord>> {
    return this.successCache ? this.successCache.read(remediation) : new Map();
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
    if (!parsed.success) return { reason: `invalid params: ${describeIssues(parsed.error.issues, '(params)')}` };
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
    this.youngGeneration.admit();
    const record: RunRecord = {
      id: request.id ?? newRunId(nowMs), remediation: request.remediation, trigger: request.trigger, status: 'queued', params: request.params,
      queuedAt: new Date(nowMs).toISOString(), dryRun: this.options.config.remediation.dryRun || request.dryRun === true,
      host: HOST, pid: process.pid,
      ...(request.alert ? { alert: request.alert } : {}), ...(request.source ? { source: request.source } : {}),
    };
    const settled = (done: Promise<RunRecord>) => ({ runId: record.id, done, journalled: done.then((final) => final.status) });
    const action = this.actions.get(request.remediation);
    if (this.closing) return settled(this.finisher.finish(record, { status: 'cancelled', reason: 'upkeep is shutting down' }));
    if (!action) return settled(this.finisher.finish(record, { status: 'rejected', reason: `unknown remediation "${request.remediation}"${unknownNameHint(request.remediation, [...this.actions.keys()], 'remediations')}` }));
    // Checked before the alert is claimed, so a refused alert is not taken for a duplicate when it comes again.
    if (this.queue.room() < 1) throw new QueueFull(this.options.config.remediation.maxQueued);
    let settle: (record: RunRecord) => void = () => undefined;
    const done = new Promise<RunRecord>((resolve) => { settle = resolve; });
    const job: Job = { record, request, action, params: undefined, settle };
    const leave = this.queue.reserve();
    const journalled = this.claimScreenQueue(job, leave).finally(leave);
    this.admitting.set(record.id, journalled);
    const admitted = () => { this.admitting.delete(record.id); };
    journalled.then(admitted, admitted);
    return { runId: record.id, done, journalled };
  }

  async claimTick(job: string, nominalMs: number): Promise<{ runId: string } | { heldBy: string }> {
    const runId = newRunId(this.now());
    const heldBy = await this.store.guards.claimTick(job, nominalMs, runId);
    return heldBy === undefined ? { runId } : { heldBy };
  }

  /** How many more runs the queue takes before submit throws QueueFull. */
  queueRoom(): number {
    return this.queue.room();
  }

  /**
   * Claims the job's alert (a re-delivery settles as a duplicate), screens it, then queues it once
   * its line is written. `leave` gives back the job's place reserved against maxQueued.
   */
  private async claimScreenQueue(job: Job, leave: () => void): Promise<RunStatus> {
    const { record, request, action } = job;
    const key = request.alert ? idempotencyKey(request.alert, request.remediation) : undefined;
    if (key !== undefined) {
      this.claiming.set(record.id, job);
      let handledBy: string | undefined;
      try {
        handledBy = await this.claimAlert(key, record);
      } catch (err) {
        // Not acknowledged: the sender retries, and nothing ran without its claim.
        job.settle({ ...record, status: 'cancelled', reason: `the alert could not be claimed: ${errorMessage(err)}`, finishedAt: new Date(this.now()).toISOString() });
        throw err;
      } finally {
        this.claiming.delete(record.id);
      }
      if (handledBy !== undefined) {
        const duplicate = await this.finisher.finish(record, { status: 'duplicate', duplicateOf: handledBy, reason: `alert already handled by run ${handledBy}` });
        job.settle(duplicate);
        return duplicate.status;
      }
      const stopped = job.cancelled ?? (this.closing ? 'upkeep is shutting down' : undefined);
      if (stopped !== undefined) {
        await this.history.releaseAlert(key, record.id);
        const cancelled = await this.finisher.finish(record, { status: 'cancelled', reason: stopped });
        job.settle(cancelled);
        return cancelled.status;
      }
    }
    // Refused by the config alone: journalled and counted as rejected, never queued. The alert stays
    // claimed, so its re-deliveries are duplicates rather than rejections counted again.
    const screened = this.screen(action, request.params, request.trigger);
    if ('reason' in screened) {
      const rejected = await this.finisher.finish(record, { status: 'rejected', reason: screened.reason });
      job.settle(rejected);
      return rejected.status;
    }
    job.params = screened.params;
    return this.journalThenQueue(job, key, leave);
  }

  /**
   * Claims the alert for `record`: the run that already has it, or undefined. A claim that should
   * have been given back (orphanedClaim: its run ended a failure but the release was lost, or upkeep
   * was killed between the claim and the run's line) is given back and claimed again.
   */
  private async claimAlert(key: string, record: RunRecord): Promise<string | undefined> {
    const atMs = Date.parse(record.queuedAt);
    const holder = await this.history.claimAlert(key, record.id, atMs);
    if (holder === undefined) return undefined;
    const orphaned = await orphanedClaim(holder, this.now(), this.retentionMs, (id) => this.store.get(id));
    if (orphaned === null) return holder;
    this.options.log.warn({ runId: record.id, claimedBy: holder, reason: orphaned }, 'the alert\'s claim should have been given back; claiming it again');
    await this.history.releaseAlert(key, holder);
    return this.history.claimAlert(key, record.id, atMs);
  }

  /**
   * Queues the run once its `queued` line is in the file. The request is acknowledged then: the
   * line survives upkeep being killed, and its fsync follows in the same group commit. A line
   * that cannot be written (a full disk) fails the request, and its run never starts: the alert is
   * given back, so the sender's retry runs once the disk is back. (The run used to be queued
   * first, and so ran for a request answered 500, with no line in the journal.)
   */
  private async journalThenQueue(job: Job, key: string | undefined, leave: () => void): Promise<RunStatus> {
    const { record } = job;
    const { written, durable } = this.store.append(record);
    durable
      .catch((err: unknown) => this.options.log.error({ err, runId: record.id }, 'cannot write the journal'))
      .finally(() => this.queue.pump());
    // Still admitting: a resolved alert cancels it by its flag, as while it claims.
    this.claiming.set(record.id, job);
    try {
      await written;
    } catch (err) {
      if (key !== undefined) await this.giveBack(key, record.id);
      job.settle({ ...record, status: 'cancelled', reason: `the run could not be journalled: ${errorMessage(err)}`, finishedAt: new Date(this.now()).toISOString() });
      throw err;
    } finally {
      this.claiming.delete(record.id);
    }
    const stopped = job.cancelled ?? (this.closing ? 'upkeep is shutting down' : undefined);
    if (stopped !== undefined) {
      if (key !== undefined) await this.giveBack(key, record.id);
      const cancelled = await this.finisher.finish(record, { status: 'cancelled', reason: stopped });
      job.settle(cancelled);
      return cancelled.status;
    }
    leave();
    this.queue.push(job);
    return 'queued';
  }

  private async giveBack(key: string, runId: string): Promise<void> {
    await this.history.releaseAlert(key, runId).catch((err: unknown) => this.options.log.error({ err, runId }, 'cannot release the alert claim'));
  }

  /** A resolved alert: its runs that have not started yet are cancelled. */
  cancelQueued(fingerprint: string, reason: string): RunRecord[] {
    const cancelled: RunRecord[] = [];
    for (const job of this.claiming.values()) {
      if (job.record.alert?.fingerprint !== fingerprint || job.cancelled !== undefined) continue;
      // Still being admitted: claimScreenQueue() journals it as cancelled once its claim, or its
      // `queued` line, is answered.
      job.cancelled = reason;
      cancelled.push({ ...job.record, status: 'cancelled', reason });
    }
    for (const job of this.queue.takeAlert(fingerprint)) {
      const record = { ...job.record, status: 'cancelled' as const, reason, finishedAt: new Date(this.now()).toISOString() };
      cancelled.push(record);
      void this.finisher.finish(record, {}).then(job.settle);
    }
    return cancelled;
  }

  /** A run that never started because upkeep stopped did not do its work: its alert is given back, so a re-delivery runs it. */
  private async cancelAtShutdown(job: Job): Promise<void> {
    const { record } = job;
    if (record.alert) await this.giveBack(idempotencyKey(record.alert, record.remediation), record.id);
    job.settle(await this.finisher.finish({ ...record, status: 'cancelled', reason: 'upkeep shut down before the run started' }, {}));
  }

  /**
   * Cancels queued runs, lets running ones finish for up to `runsGraceMs` (0: none) and interrupts
   * the ones still running then (`why` is their error; `abandonAfterMs`: how long one may take to
   * notice, see ShutDown). The journal and the clients stay open: a request still in flight (one
   * waiting on a run with ?wait=true) reads them. Once; a second call waits for the first.
   */
  stopRuns(runsGraceMs = 0, why = 'upkeep shut down', abandonAfterMs?: number): Promise<void> {
    this.runsStopped ??= this.finishRuns(runsGraceMs, why, abandonAfterMs);
    return this.runsStopped;
  }

  /** stopRuns (with these arguments, unless it was called before), then closes the journal and the clients. Once; a second call waits for the first. */
  close(runsGraceMs = 0, why = 'upkeep shut down', abandonAfterMs?: number): Promise<void> {
    this.closed ??= (async () => {
      await this.stopRuns(runsGraceMs, why, abandonAfterMs);
      await this.finisher.close();
      await this.leases?.stop();
      this.silences.close();
      await this.executor.close();
      await this.store.close();
      await this.connections.close();
    })();
    return this.closed;
  }

  private async finishRuns(runsGraceMs: number, why: string, abandonAfterMs: number | undefined): Promise<void> {
    this.closing = true;
    this.youngGeneration.stop();
    const { log } = this.options;
    const cancelling = this.queue.closeWaiting().map((job) => this.cancelAtShutdown(job));
    const running = this.queue.activeCount();
    const graceSeconds = Math.round(runsGraceMs / 100) / 10;
    if (running > 0 && runsGraceMs > 0) log.info({ runs: running, graceSeconds }, 'waiting for the runs in flight to finish');
    const interrupted = await this.queue.finishActive(runsGraceMs, new ShutDown(why, abandonAfterMs));
    if (interrupted > 0 && runsGraceMs > 0) log.warn({ runs: interrupted, graceSeconds }, 'runs still in flight when the shutdown grace ran out are interrupted');
    await Promise.allSettled([...this.admitting.values(), ...cancelling]);
  }
}
