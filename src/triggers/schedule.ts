import type { Cron } from 'croner';
import { Gauge, type Registry } from '../prom.js';
import { cronOccurrences } from '../config/cron.js';
import type { Config, ScheduleEntry } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { RunSubmitter, TickClaims } from '../engine/submitter.js';

const NEXT_RUN = 'upkeep_schedule_next_run_timestamp_seconds';

export interface ScheduleOptions {
  config: Readonly<Config>;
  /** Claims each tick before submitting its run, so replicas sharing a state store run it once. */
  submitter: RunSubmitter & TickClaims;
  /** The app's registry: upkeep_schedule_next_run_timestamp_seconds{job} is exported there. */
  registry: Registry;
  log: Logger;
}

export interface RunningSchedule {
  stop(): Promise<void>;
}

/**
 * One scheduled tick: claimed by its job and nominal time (so of the replicas sharing a state store,
 * whatever their clocks' skew, one runs it), then a run through the engine with trigger `schedule`,
 * awaited so ticks never overlap. A tick another replica claimed is its business: skipped quietly.
 */
async function submit(entry: ScheduleEntry, nominal: Date, submitter: RunSubmitter & TickClaims, log: Logger): Promise<void> {
  const claim = await submitter.claimTick(entry.name, nominal.getTime());
  if ('heldBy' in claim) {
    log.debug({ nominal: nominal.toISOString(), runId: claim.heldBy }, 'tick already claimed by another run; skipped');
    return;
  }
  const { runId, done } = submitter.submit({
    id: claim.runId,
    remediation: entry.remediation,
    params: entry.params,
    trigger: 'schedule',
    allowRisk: entry.allowRisk,
    source: `schedule:${entry.name}`,
    ...(entry.dryRun !== undefined ? { dryRun: entry.dryRun } : {}),
  });
  log.info({ runId, remediation: entry.remediation }, 'scheduled run submitted');
  const record = await done;
  // The engine's 'run finished' line says the same at info and above (a failure at error); this
  // one, the job's name beside it, only at debug: at info every tick wrote three lines.
  log.debug({ runId, status: record.status, reason: record.reason, error: record.error }, 'scheduled run finished');
}

/** A tick that fires this late after its nominal time was held up (a stalled loop, a clock jump): it is missed. */
const LATE_MS = 1000;
/** The longest single sleep, so a wall-clock jump is noticed soon. */
const MAX_SLEEP_MS = 30_000;
/** At most this many missed ticks are counted per wake-up; the rest are counted on the next, at once. */
const MAX_COUNTED = 1000;

/** One entry's ticks: it sleeps until the next occurrence of its cron expression, then runs it once. */
class Job {
  private readonly occurrences: Cron;
  /** The latest nominal time dealt with (started, skipped or missed); the next tick is the first occurrence after it. */
  private handled = new Date();
  /**
   * When the next tick is due. It moves on only when a tick starts, so a tick that does not
   * (upkeep stalled, or the entry's previous run still going) stays in the past, where the
   * UpkeepScheduleMissed alert sees it.
   */
  due: Date | null;
  private running = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly entry: ScheduleEntry, private readonly submitter: RunSubmitter & TickClaims, private readonly log: Logger) {
    this.occurrences = cronOccurrences(entry.cron, entry.timezone);
    this.due = this.occurrences.nextRun(this.handled);
    this.sleep();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private sleep(): void {
    const next = this.occurrences.nextRun(this.handled);
    if (!next) return;
    this.timer = setTimeout(() => this.wake(), Math.min(Math.max(next.getTime() - Date.now(), 0), MAX_SLEEP_MS));
    // The HTTP server keeps the process alive; a schedule alone must not (tests, shutdown).
    this.timer.unref();
  }

  private wake(): void {
    const now = Date.now();
    const missed: Date[] = [];
    let onTime: Date | null = null;
    for (let at = this.occurrences.nextRun(this.handled); at && at.getTime() <= now && missed.length < MAX_COUNTED; at = this.occurrences.nextRun(at)) {
      if (now - at.getTime() > LATE_MS) missed.push(at);
      else onTime = at;
      this.handled = at;
    }
    const [first] = missed;
    if (first) this.log.warn({ missed: first.toISOString(), count: missed.length }, 'a scheduled run was missed (upkeep was busy or down); it is not backfilled');
    if (onTime) this.start(onTime);
    this.sleep();
  }

  private start(nominal: Date): void {
    if (this.running) {
      this.log.warn({ nominal: nominal.toISOString() }, "the entry's previous run is still going; this tick is skipped");
      return;
    }
    this.running = true;
    this.due = this.occurrences.nextRun(nominal);
    submit(this.entry, nominal, this.submitter, this.log)
      .catch((err: unknown) => this.log.error({ err }, 'scheduled run could not be submitted'))
      .finally(() => { this.running = false; });
  }
}

/**
 * Starts a job per `schedule:` entry. Each tick submits a run to the engine (so it gets every
 * guard); a tick that comes while the entry's previous run is still going is skipped, and ticks
 * missed while upkeep was down or stalled are not backfilled.
 */
export function startSchedule(options: ScheduleOptions): RunningSchedule {
  const { config, submitter, registry, log } = options;
  const jobs = new Map<string, Job>();
  for (const entry of config.schedule) jobs.set(entry.name, new Job(entry, submitter, log.child({ job: entry.name })));
  new Gauge({
    name: NEXT_RUN,
    help: 'Unix time of the next scheduled run of each schedule entry.',
    labelNames: ['job'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [job, { due }] of jobs) {
        if (due) this.set({ job }, due.getTime() / 1000);
      }
    },
  });
  if (jobs.size > 0) log.info({ jobs: [...jobs.keys()] }, 'schedule started');
  return {
    async stop() {
      for (const job of jobs.values()) job.stop();
      jobs.clear();
      registry.removeSingleMetric(NEXT_RUN);
    },
  };
}
