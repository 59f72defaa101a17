/**
 * How fast the run queue drains, from the journal's own timestamps (bench/webhook.ts).
 *
 * Why not "finished runs / seconds from the first request to an empty queue": that figure can
 * never exceed the rate the alerts arrive at. At 1,000 alerts a second a queue with no limit at
 * all would measure 1,000 × 30 s / (30 s + its last run's time), under 1,000. What the goal
 * asks is how many runs a second the queue gets through, so it is measured only while runs wait
 * for a slot: then every slot is taken, and the runs finished per second are what it can do.
 */

/** One run's times from the journal, in epoch milliseconds. */
export interface RunTimes {
  readonly queued: number;
  readonly started: number;
  readonly finished: number;
}

export interface Drain {
  /** Runs finished per second while some run had waited longer than `waitedMs`; null when that was under a second in all. */
  readonly rate: number | null;
  readonly backlogSeconds: number;
  readonly finishedInBacklog: number;
  /** How many runs held a slot, on average, during those stretches: all the slots, if they are what the runs waited for. */
  readonly running: number;
}

/**
 * A run that has waited `waitedMs` for a slot is waiting because every slot is taken (a run is
 * queued once its `queued` line is written, a few ms, so a shorter wait says little). Those
 * stretches of time are merged; runs finished inside them, per second of them, is the rate.
 */
export function drainRate(runs: readonly RunTimes[], waitedMs = 100): Drain {
  const waits = runs
    .filter((run) => run.started - run.queued > waitedMs)
    .map((run) => [run.queued + waitedMs, run.started] as const)
    .sort((a, b) => a[0] - b[0]);
  const backlog: Array<[number, number]> = [];
  for (const [from, to] of waits) {
    const last = backlog.at(-1);
    if (last && from <= last[1]) last[1] = Math.max(last[1], to);
    else backlog.push([from, to]);
  }
  const backlogMs = backlog.reduce((sum, [from, to]) => sum + (to - from), 0);
  const finishedInBacklog = runs.filter((run) => backlog.some(([from, to]) => from <= run.finished && run.finished < to)).length;
  const overlap = (run: RunTimes) => backlog.reduce((sum, [from, to]) => sum + Math.max(0, Math.min(to, run.finished) - Math.max(from, run.started)), 0);
  const runningMs = runs.reduce((sum, run) => sum + overlap(run), 0);
  return {
    rate: backlogMs >= 1000 ? finishedInBacklog / (backlogMs / 1000) : null,
    backlogSeconds: backlogMs / 1000, finishedInBacklog, running: backlogMs > 0 ? runningMs / backlogMs : 0,
  };
}
