import { Worker, type WorkerOptions } from 'node:worker_threads';
import { z } from 'zod';
import { checkResultSchema, verifyResultSchema } from '../actions/contract.js';
import type { Config } from '../config/schema.js';
import { errorMessage, type Logger } from '../log.js';
import type { Executor, RunSpec, RunSteps } from './executor.js';
import { dryRunSchema, fromThreadSchema, planSchema, runOutputSchema, type FromThread, type STEPS, type ToThread } from './executor-protocol.js';
import { InFlight } from './in-flight.js';
import { fromStepError } from './step-errors.js';
import { ShutDown } from './stop.js';
import { YoungGeneration } from './young-generation.js';

// With no run open this long, the thread exits: an idle upkeep does not keep a second V8 heap.
const IDLE_EXIT_MS = 60_000;
// How long a closing engine waits for the thread to end its connections before terminating it.
const EXIT_GRACE_MS = 5000;

// A line of the thread's logger: a run's has the run's id; the thread's own (it could not lower its priority) has none.
const logLine = z.looseObject({
  level: z.union([z.literal(10), z.literal(20), z.literal(30), z.literal(40), z.literal(50), z.literal(60)])
    .transform((level) => ({ 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' } as const)[level]),
  msg: z.string().optional(),
  runId: z.string().optional(),
});

/**
 * A log line from the thread, logged here (this process's destination): a run's by the run's own
 * logger (its bindings), or by one naming the run if the run has closed (a late timer); the
 * thread's own by the engine's logger.
 */
export function relog(line: string, log: Logger, runLog: (runId: string) => Logger | undefined): void {
  const { level, msg, runId, time: _time, pid: _pid, hostname: _hostname, ...fields } = logLine.parse(JSON.parse(line));
  const target = runId === undefined ? log : runLog(runId) ?? log.child({ runId });
  target[level](fields, msg);
}

type Step = typeof STEPS[number];
interface Pending { step: Step; resolve: (value: unknown) => void; reject: (err: Error) => void }

/**
 * Runs the actions' steps on a worker thread (executor-worker.ts), so the main event loop only
 * admits, journals and acknowledges: a flood of runs reading the catalog no longer delays the
 * 202 of the next webhook. The thread starts with the first run and exits after a minute without
 * one. If it dies, the steps it had in hand fail (the runs are journalled as failures and their
 * alerts given back) and the next run starts a new one.
 */
export class ThreadExecutor implements Executor {
  private worker: Worker | null = null;
  private readonly calls = new InFlight<number, Pending>();
  /** The open runs, each with the thread it was opened on. */
  private readonly runs = new InFlight<string, { spec: RunSpec; worker: Worker }>();
  private nextCall = 1;
  private idleTimer: NodeJS.Timeout | undefined;

  /** `youngGeneration`: the engine's policy, set again once the thread is online (see YoungGeneration.apply). */
  constructor(private readonly config: Readonly<Config>, private readonly log: Logger, private readonly youngGeneration = new YoungGeneration()) {}

  open(spec: RunSpec): RunSteps {
    const { runId } = spec;
    clearTimeout(this.idleTimer);
    const worker = this.thread();
    this.runs.set(runId, { spec, worker });
    // While a run is open the thread keeps the process alive: whoever awaits the run may hold no other handle.
    worker.ref();
    worker.postMessage({ type: 'open', runId, remediation: spec.action.name, dryRun: spec.dryRun, deadline: spec.deadline, trigger: spec.trigger } satisfies ToThread);
    const stopListening = spec.abort.onAbort(() => {
      const { reason } = spec.abort;
      if (this.worker === worker) worker.postMessage({ type: 'abort', runId, shutdown: reason instanceof ShutDown, message: errorMessage(reason) } satisfies ToThread);
    });
    const call = (step: Step, ...args: unknown[]) => this.call(runId, step, args);
    // Once a dry run was sent, the thread closes the run itself when it ends (executor-worker.ts).
    let closesItself = false;
    return {
      dryRun: async (params) => {
        closesItself = true;
        return dryRunSchema.parse(await call('dryRun', params));
      },
      resolve: (params) => call('resolve', params),
      check: async (params) => checkResultSchema.parse(await call('check', params)),
      plan: async (params) => planSchema.parse(await call('plan', params)),
      run: async (params, payload) => runOutputSchema.parse(await call('run', params, payload)),
      verify: async (params, before, output) => verifyResultSchema.parse(await call('verify', params, before, output)),
      close: async (aborted) => {
        try {
          if (!closesItself) await call('close', aborted);
        } finally {
          // The abort outlives the run (the queue holds it until the run's final line is durable);
          // its listener would keep the run's spec, logger and progress closure alive with it.
          stopListening();
          this.runs.delete(runId);
          if (this.runs.size === 0) {
            this.worker?.unref();
            this.idleTimer = setTimeout(() => { void this.exit(); }, IDLE_EXIT_MS).unref();
          }
        }
      },
    };
  }

  async close(): Promise<void> {
    clearTimeout(this.idleTimer);
    await this.exit();
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    // A young generation of 3 MB instead of V8's 16: the thread's steps keep little alive between
    // scavenges, and a serving upkeep measured 21–22 MB more RSS with the thread (26–27 MB unlimited).
    const resourceLimits = { maxYoungGenerationSizeMb: 3 };
    const worker = startThread({ workerData: { config: this.config, level: this.log.level }, resourceLimits });
    worker.on('message', (raw: unknown) => {
      try {
        this.receive(raw);
      } catch (err) {
        this.log.error({ err }, 'unreadable message from the executor thread');
      }
    });
    worker.once('online', () => this.youngGeneration.apply());
    worker.on('error', (err) => this.lost(worker, err));
    worker.on('exit', (code) => this.lost(worker, new Error(`it exited with code ${code}`)));
    this.worker = worker;
    return worker;
  }

  private call(runId: string, step: Step, args: unknown[]): Promise<unknown> {
    const worker = this.runs.get(runId)?.worker;
    // The run's thread died: nothing of it is left to close, and no other step can run.
    if (worker !== this.worker || !worker) return step === 'close' ? Promise.resolve() : Promise.reject(new Error('the executor thread stopped'));
    const callId = this.nextCall++;
    return new Promise((resolve, reject) => {
      this.calls.set(callId, { step, resolve, reject });
      worker.postMessage({ type: 'call', runId, callId, step, args } satisfies ToThread);
    });
  }

  private receive(raw: unknown): void {
    const message: FromThread = fromThreadSchema.parse(raw);
    switch (message.type) {
      case 'result':
      case 'failed': {
        const pending = this.calls.get(message.callId);
        this.calls.delete(message.callId);
        if (message.type === 'result') pending?.resolve(message.value);
        else pending?.reject(fromStepError(message.error));
        return;
      }
      case 'progress':
        this.runs.get(message.runId)?.spec.progress(message.detail);
        return;
      case 'log':
        relog(message.line, this.log, (runId) => this.runs.get(runId)?.spec.log);
    }
  }

  /** The thread is gone: the steps it had in hand fail, and the next run starts a new one. */
  private lost(worker: Worker, err: Error): void {
    if (this.worker !== worker) return;
    this.worker = null;
    if (this.calls.size === 0) return;
    this.log.error({ err }, 'the executor thread stopped with runs in hand; their steps fail');
    // A run's connections died with the thread: closing them is done.
    for (const pending of this.calls.values()) {
      if (pending.step === 'close') pending.resolve(undefined);
      else pending.reject(new Error(`the executor thread stopped: ${errorMessage(err)}`));
    }
    this.calls.clear();
  }

  private async exit(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    // A run opened from now on starts a new thread rather than talk to one that is leaving.
    this.worker = null;
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    worker.postMessage({ type: 'exit' } satisfies ToThread);
    const timer = setTimeout(() => { void worker.terminate(); }, EXIT_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }
}

// The TypeScript loader bin/upkeep.js registered at run time, when it runs the sources (a checkout).
const sourceLoader = z.object({ url: z.string(), register: z.boolean() });

/**
 * The thread, on its entry beside this file: compiled (the installed package), or the TypeScript
 * source. A thread inherits a loader on node's command line (tap's) but not one bin/upkeep.js
 * registered at run time (a checkout's `npm run demo`): then its first line registers that one.
 */
function startThread(options: WorkerOptions): Worker {
  const entry = new URL(import.meta.url.endsWith('.ts') ? './executor-worker.ts' : './executor-worker.js', import.meta.url);
  const loader = sourceLoader.safeParse(Reflect.get(globalThis, Symbol.for('upkeep.sourceLoader')));
  if (!loader.success) return new Worker(entry, options);
  const { url, register } = loader.data;
  const first = `const loaded = await import(${JSON.stringify(url)});${register ? ' loaded.register();' : ''}`;
  return new Worker(`(async () => { ${first} await import(${JSON.stringify(entry.href)}); })();`, { ...options, eval: true });
}
