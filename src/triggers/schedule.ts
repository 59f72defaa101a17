import cron, { type Logger as CronLogger, type ScheduledTask } from 'node-cron';
import { Gauge, type Registry } from 'prom-client';
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

/** node-cron's own messages (a tick skipped because the last run is still going...) go to pino. */
export function cronLogger(log: Logger): CronLogger {
  return {
    info: (message) => log.info(message),
    warn: (message) => log.warn(message),
    error: (message, err) => log.error({ err: err ?? message }, typeof message === 'string' ? message : 'schedule error'),
    debug: (message) => log.debug(typeof message === 'string' ? message : { err: message }, 'schedule'),
  };
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
  const level = record.status === 'failure' || record.status === 'rejected' ? 'warn' : 'info';
  log[level]({ runId, status: record.status, reason: record.reason, error: record.error }, 'scheduled run finished');
}

/**
 * Starts a node-cron task per `schedule:` entry. Each tick submits a run to the engine (so it gets
 * every guard); a tick that comes while the entry's previous run is still going is skipped
 * (noOverlap), and ticks missed while upkeep was down or stalled are not backfilled.
 */
export function startSchedule(options: ScheduleOptions): RunningSchedule {
  const { config, submitter, registry, log } = options;
  const tasks = new Map<string, ScheduledTask>();
  // When each entry's next tick is due. It moves on only when a tick starts, so a tick that does
  // not (upkeep stalled, or the entry's previous run still going) stays in the past, where the
  // UpkeepScheduleMissed alert sees it.
  const due = new Map<string, Date | null>();
  for (const entry of config.schedule) {
    const jobLog = log.child({ job: entry.name });
    const task = cron.createTask(entry.cron, (context) => {
      due.set(entry.name, task.getNextRun());
      return submit(entry, context.date, submitter, jobLog);
    }, {
      name: entry.name,
      noOverlap: true,
      logger: cronLogger(jobLog),
      // The HTTP server keeps the process alive; a schedule alone must not (tests, shutdown).
      unref: true,
      ...(entry.timezone ? { timezone: entry.timezone } : {}),
    });
    task.on('execution:missed', (context) => jobLog.warn({ missed: context.date.toISOString() }, 'a scheduled run was missed (upkeep was busy or down); it is not backfilled'));
    task.on('execution:failed', (context) => jobLog.error({ err: context.execution?.error }, 'scheduled run could not be submitted'));
    tasks.set(entry.name, task);
  }
  new Gauge({
    name: NEXT_RUN,
    help: 'Unix time of the next scheduled run of each schedule entry.',
    labelNames: ['job'],
    registers: [registry],
    collect() {
      this.reset();
      for (const job of tasks.keys()) {
        const next = due.get(job);
        if (next) this.set({ job }, next.getTime() / 1000);
      }
    },
  });
  for (const [job, task] of tasks) {
    void task.start();
    due.set(job, task.getNextRun());
  }
  if (tasks.size > 0) log.info({ jobs: [...tasks.keys()] }, 'schedule started');
  return {
    async stop() {
      for (const task of tasks.values()) await task.destroy();
      tasks.clear();
      registry.removeSingleMetric(NEXT_RUN);
    },
  };
}
