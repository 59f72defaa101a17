import type { AnyAction } from '../actions/contract.js';
import { InFlight } from './in-flight.js';
import type { RunRecord } from './journal.js';
import { RunAbort } from './run-abort.js';
import type { RunRequest } from './submitter.js';

export interface Job {
  record: RunRecord;
  request: RunRequest;
  action: AnyAction;
  /** What the action's params schema made of request.params (set once the run passes its screen). */
  params: unknown;
  settle: (record: RunRecord) => void;
  /** Set by a resolved alert while the job was still claiming its alert. */
  cancelled?: string;
}

/** The queue holds remediation.maxQueued runs already: the request is refused whole and nothing is journalled. */
export class QueueFull extends Error {
  constructor(readonly limit: number) {
    super(`the run queue is full: at most ${limit} runs may wait (remediation.maxQueued); retry later`);
    this.name = 'QueueFull';
  }
}

interface Limits { readonly maxQueued: number; readonly concurrency: number; readonly dryRunConcurrency: number }

/** One kind of run, with its own slots: real runs (`concurrency`) or dry runs (`dryRunConcurrency`). */
interface Lane {
  readonly waiting: Job[];
  running: number;
  readonly limit: number;
}

/**
 * The runs waiting for a slot and the ones running: at most `concurrency` real runs and, beside
 * them, `dryRunConcurrency` dry runs at a time, each kind in the order it came. A dry run holds no
 * lock and executes nothing, so it never waits behind real runs, nor they behind it. Runs still
 * being admitted (claiming their alert, being journalled) hold a reservation, so they count
 * against maxQueued before they are in the queue.
 */
export class RunQueue {
  private readonly real: Lane;
  private readonly dry: Lane;
  private reserved = 0;
  private readonly active = new InFlight<string, { abort: RunAbort; done: Promise<void> }>();
  private closed = false;

  /**
   * `execute` may call `release` once the run's work is done (its locks let go, its outcome in the
   * guards' memory and its final line handed to the journal): its slot is then free for the next
   * run while it waits for that line's fsync.
   */
  constructor(private readonly limits: Limits, private readonly execute: (job: Job, abort: RunAbort, release: () => void) => Promise<RunRecord>) {
    this.real = { waiting: [], running: 0, limit: limits.concurrency };
    this.dry = { waiting: [], running: 0, limit: limits.dryRunConcurrency };
  }

  /** How many more runs fit before submit refuses with QueueFull. */
  room(): number {
    return Math.max(0, this.limits.maxQueued - this.real.waiting.length - this.dry.waiting.length - this.reserved);
  }

  private lane(job: Job): Lane {
    return job.record.dryRun ? this.dry : this.real;
  }

  /** Holds a place for a run being admitted; the returned function gives it back (once). */
  reserve(): () => void {
    this.reserved += 1;
    let held = true;
    return () => {
      if (held) this.reserved -= 1;
      held = false;
    };
  }

  push(job: Job): void {
    this.lane(job).waiting.push(job);
  }

  /** Takes the waiting runs of an alert out of the queue. */
  takeAlert(fingerprint: string): Job[] {
    const taken: Job[] = [];
    for (const { waiting } of [this.real, this.dry]) {
      const found = waiting.filter((job) => job.record.alert?.fingerprint === fingerprint);
      for (const job of found) waiting.splice(waiting.indexOf(job), 1);
      taken.push(...found);
    }
    return taken;
  }

  /** Starts waiting runs while their kind has free slots. */
  pump(): void {
    for (const lane of [this.real, this.dry]) {
      while (!this.closed && lane.running < lane.limit) {
        const job = lane.waiting.shift();
        if (!job) break;
        lane.running += 1;
        let holding = true;
        const release = () => {
          if (!holding) return;
          holding = false;
          lane.running -= 1;
          this.pump();
        };
        const abort = new RunAbort();
        // The closures below outlive the run's work by its final line's fsync: they keep its id and
        // its settle, not the job, whose request (the alert, its labels) would stay alive that long.
        const { settle } = job;
        const id = job.record.id;
        // Out of `active` before it settles, so whoever awaited the run and then closes finds it ended.
        const done = this.execute(job, abort, release).then((record) => {
          this.active.delete(id);
          settle(record);
        });
        // Shutdown waits for every run until its final line is durable, slot released or not.
        this.active.set(id, { abort, done });
        void done.finally(() => {
          this.active.delete(id);
          release();
        });
      }
    }
  }

  /** Stops starting runs and hands back the ones still waiting. */
  closeWaiting(): Job[] {
    this.closed = true;
    return [...this.real.waiting.splice(0), ...this.dry.waiting.splice(0)];
  }

  /** How many runs have started and not yet settled. */
  activeCount(): number {
    return this.active.size;
  }

  /**
   * Lets the running runs finish for up to `graceMs`, then aborts the ones still running with
   * `reason`, and waits until each has ended. Returns how many were aborted.
   */
  async finishActive(graceMs: number, reason: Error): Promise<number> {
    if (graceMs > 0 && this.active.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<void>((resolve) => { timer = setTimeout(resolve, graceMs); });
      // allSettled: a run that fails while the others finish must not end the grace for them unaborted.
      await Promise.race([Promise.allSettled(this.active.values().map(({ done }) => done)), graceOver]);
      clearTimeout(timer);
    }
    const left = this.active.values();
    for (const { abort } of left) abort.abort(reason);
    await Promise.all(left.map(({ done }) => done));
    return left.length;
  }
}
