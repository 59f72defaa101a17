import type { Logger } from '../log.js';
import type { RunHistory } from './history.js';
import type { RunRecord } from './journal.js';
import type { RemediationMetrics } from './metrics.js';
import type { StateStore } from './state/store.js';

const FINISHED_LEVEL: Readonly<Record<RunRecord['status'], 'info' | 'warn' | 'error'>> = {
  queued: 'info', running: 'info', success: 'info', dry_run: 'info', skipped: 'info', duplicate: 'info', cancelled: 'info',
  rejected: 'warn', failure: 'error', interrupted: 'error',
};

/** One line per finished run: what ran, on what, how it ended and, when it did not succeed, why. */
function logFinished(log: Logger, record: RunRecord, durationSeconds: number | null): void {
  // An interrupted run's reason says what stopped it (a shutdown, a peer); its error is only what the abort left behind.
  const why = record.status === 'interrupted' ? record.reason ?? record.error : record.error ?? record.reason;
  log[FINISHED_LEVEL[record.status]]({
    runId: record.id, remediation: record.remediation, trigger: record.trigger, target: record.lockKey ?? null, status: record.status,
    durationSeconds: durationSeconds === null ? null : Math.round(durationSeconds * 1000) / 1000,
    ...(record.status !== 'success' && why !== undefined ? { reason: why } : {}),
  }, 'run finished');
}

// How often the journal is offered the final lines it refused, and how many are kept for it.
const RETRY_MS = 5_000;
const UNWRITTEN_LIMIT = 1_000;

/** How every run ends, whatever ended it: the guards' memory, the metrics, the log line and the journal. */
export class RunFinisher {
  constructor(
    private readonly history: RunHistory,
    private readonly metrics: RemediationMetrics,
    private readonly store: StateStore,
    private readonly log: Logger,
    private readonly now: () => number,
    private readonly retryMs = RETRY_MS,
  ) {}

  /** Runs whose outcome remember() put in the guards' memory already. */
  private readonly remembered = new Set<string>();
  /** Remediations whose circuit this replica saw open (logCircuit). */
  private readonly openCircuits = new Set<string>();

  /**
   * Final lines the journal refused (a full disk), by run id. Left alone, such a run would read
   * `running` until the next start journalled it `interrupted` and gave its alert back, so a
   * re-delivery would run it again: they are written again until the journal takes them.
   */
  private readonly unwritten = new Map<string, RunRecord>();
  /**
   * Outcomes the guards' memory refused (state.postgres away for a moment), by run id. Only
   * logged, such a run's cooldown and its count toward the circuit breaker were lost for good: the
   * alert's next episode ran again inside the cooldown. Recorded again until the memory takes them
   * (recording is idempotent: the latest time wins, a failure is keyed by its run).
   */
  private readonly unrecorded = new Map<string, RunRecord>();
  private retry: NodeJS.Timeout | null = null;
  private closed = false;

  /**
   * Puts the run's outcome in the guards' memory ahead of finish(), while the run still holds its
   * lock; finish() then does not record it again. On failure finish() tries again, and logs it.
   */
  async remember(record: RunRecord): Promise<void> {
    try {
      await this.history.recordFinish(record);
      this.remembered.add(record.id);
    } catch {
      // Logged by finish(), which records it then.
    }
  }

  /**
   * The circuit breaker's turns, in the log: it opened on this replica's failure, or this
   * replica's success closed what it saw open. Before, only the metric said so. (Failures aging
   * out of the window close it silently; the metric shows that.)
   */
  private async logCircuit(finished: RunRecord): Promise<void> {
    const { remediation } = finished;
    try {
      if (finished.status === 'failure' && await this.history.circuitJustOpened(remediation, this.now())) {
        this.openCircuits.add(remediation);
        this.log.warn({ remediation, runId: finished.id }, 'circuit opened: automatic runs of this remediation are refused until it succeeds (run it manually) or its failures age out');
      } else if (finished.status === 'success' && this.openCircuits.delete(remediation)) {
        this.log.info({ remediation, runId: finished.id }, 'circuit closed: the remediation succeeded');
      }
    } catch {
      // The guards' memory could not be read (the state database is away): only this line is
      // lost; the breaker reads the memory itself when it refuses a run.
    }
  }

  /** `handedOver` is called once the guards' memory has the outcome and the final line is handed to the journal. */
  async finish(record: RunRecord, changes: Partial<RunRecord>, durationSeconds: number | null = null, handedOver: () => void = () => undefined): Promise<RunRecord> {
    const finished: RunRecord = { ...record, ...changes, finishedAt: record.finishedAt ?? new Date(this.now()).toISOString() };
    const executed = finished.status === 'success' || finished.status === 'failure' ? durationSeconds : null;
    if (!this.remembered.delete(finished.id)) {
      try {
        await this.history.recordFinish(finished);
      } catch (err) {
        this.log.error({ err, runId: finished.id }, 'cannot record the run in the guards\' memory; trying again every 5 s');
        this.keep(this.unrecorded, finished, 'outcome');
      }
    }
    this.metrics.finished(finished.remediation, finished.status, executed, this.now());
    logFinished(this.log, finished, durationSeconds);
    await this.logCircuit(finished);
    let appended: ReturnType<StateStore['append']> | undefined;
    try {
      appended = this.store.append(finished);
      handedOver();
      await appended.written;
    } catch (err) {
      // Not written, so not synced either: that rejection says nothing more.
      appended?.durable.catch(() => undefined);
      this.log.error({ err, runId: finished.id }, 'cannot write the journal');
      this.keepUnwritten(finished);
      return finished;
    }
    try {
      if (await appended.durable === 'late') this.late(finished);
    } catch (err) {
      // Written but not synced: writing it again would not help.
      this.log.error({ err, runId: finished.id }, 'cannot write the journal');
    }
    return finished;
  }

  private keepUnwritten(record: RunRecord): void {
    this.keep(this.unwritten, record, 'final line');
  }

  private keep(waiting: Map<string, RunRecord>, record: RunRecord, what: 'final line' | 'outcome'): void {
    waiting.delete(record.id);
    waiting.set(record.id, record);
    const [oldest] = waiting.keys();
    if (waiting.size > UNWRITTEN_LIMIT && oldest !== undefined) {
      waiting.delete(oldest);
      this.log.error({ runId: oldest }, what === 'final line'
        ? `more than ${UNWRITTEN_LIMIT} final lines wait for the journal; this run's is given up`
        : `more than ${UNWRITTEN_LIMIT} outcomes wait for the guards' memory; this run's is given up`);
    }
    this.retryLater();
  }

  private retryLater(): void {
    if (!this.closed) this.retry ??= setTimeout(() => { void this.retryWaiting(); }, this.retryMs).unref();
  }

  /** Before the journal closes: a last try for the final lines and outcomes refused (the disk may have room, the database be back). */
  async close(): Promise<void> {
    this.closed = true;
    await this.retryWaiting();
  }

  /** Offers the guards' memory the outcomes it refused, and the journal the final lines it refused. */
  private async retryWaiting(): Promise<void> {
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    await this.offer(this.unrecorded, (record) => this.history.recordFinish(record), 'the guards\' memory took outcomes it had refused');
    await this.offer(this.unwritten, async (record) => {
      const appended = this.store.append(record);
      // Its fsync is not waited for: a written line is what keeps the run from reading `running`.
      appended.durable.catch(() => undefined);
      await appended.written;
    }, 'the journal took final lines it had refused');
  }

  /** Offers what waits to `take`, oldest first, until one is refused again; says how many it took. */
  private async offer(waiting: Map<string, RunRecord>, take: (record: RunRecord) => Promise<void>, took: string): Promise<void> {
    let taken = 0;
    for (const record of [...waiting.values()]) {
      try {
        await take(record);
      } catch {
        this.retryLater();
        break;
      }
      // A newer outcome of the same run (a late one) may have come meanwhile: only this one is done.
      if (waiting.get(record.id) === record) waiting.delete(record.id);
      taken += 1;
    }
    if (taken > 0) this.log.info({ runs: taken, waiting: waiting.size }, took);
  }

  /**
   * A peer journalled the run interrupted while this process stalled past its lease: the journal
   * keeps `interrupted`, with this outcome attached as `late`. Its alert stays given back (a
   * re-delivery may already have run it again), so nothing here claims it again.
   */
  private late(record: RunRecord): void {
    this.metrics.late.inc({ remediation: record.remediation });
    this.log.warn(
      { runId: record.id, remediation: record.remediation, status: record.status },
      'a peer journalled this run interrupted while this replica stalled past its lease; the journal keeps interrupted, with this outcome attached as late',
    );
  }
}
