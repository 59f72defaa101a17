import { parentPort, workerData } from 'node:worker_threads';
import { checkResultSchema } from '../actions/contract.js';
import { ACTIONS } from '../actions/registry.js';
import { configSchema } from '../config/schema.js';
import { createLogger } from '../log.js';
import { lowerOwnPriority } from '../thread-priority.js';
import { Connections } from '../systems/connections.js';
import { boundSteps, runContext, type RunSteps } from './executor.js';
import { InFlight } from './in-flight.js';
import { RunAbort } from './run-abort.js';
import { runOutputSchema, toThreadSchema, threadDataSchema, type FromThread, type ToThread } from './executor-protocol.js';
import { toStepError } from './step-errors.js';
import { ShutDown } from './stop.js';

/**
 * The executor thread (remediation.executor: thread): runs the actions' steps for the engine's
 * pipeline, which stays on the main thread with the journal, the locks and every guard. Each run
 * has its context here (its connections, memo and signal); Redis, Docker and the dry runs'
 * Postgres pools are shared by the thread's runs, as they are by an inline engine's.
 */
const port = parentPort;
if (!port) throw new Error('executor-worker.ts runs as a worker thread (see executor-thread.ts)');
const data = threadDataSchema.parse(workerData);
// The engine's config, validated there and cloned to this thread: parsing it again only checks it arrived whole.
const config = configSchema.parse(data.config);
const post = (message: FromThread) => port.postMessage(message);
const log = createLogger({ level: data.level, destination: { write: (line: string) => post({ type: 'log', line }) } });
yieldToMainThread();
const shared = new Connections(config);
const runs = new InFlight<string, { steps: RunSteps; abort: RunAbort }>();
const actions = new Map(ACTIONS.map((action) => [action.name, action]));

port.on('message', (raw: unknown) => {
  const message = toThreadSchema.parse(raw);
  switch (message.type) {
    case 'open': return open(message);
    case 'call': return call(message);
    case 'abort': return runs.get(message.runId)?.abort.abort(message.shutdown ? new ShutDown(message.message) : new Error(message.message));
    case 'exit': return void shared.close().finally(() => port.close());
  }
});

function open(message: Extract<ToThread, { type: 'open' }>): void {
  const action = actions.get(message.remediation);
  // The engine opens only runs of registered actions, which this thread has too.
  if (!action) throw new Error(`unknown remediation ${message.remediation}`);
  const abort = new RunAbort();
  const spec = {
    ...message, action, abort, log: log.child({ runId: message.runId }),
    progress: (detail: Readonly<Record<string, unknown>>) => post({ type: 'progress', runId: message.runId, detail: { ...detail } }),
  };
  const { context, close } = runContext(config, shared, spec, Date.now);
  runs.set(message.runId, { steps: boundSteps(action, context, close, abort), abort });
}

function call(message: Extract<ToThread, { type: 'call' }>): void {
  const { runId, callId } = message;
  const run = runs.get(runId);
  const done = (value: unknown) => {
    try {
      post({ type: 'result', callId, value });
    } catch (err) {
      // A value structured cloning cannot copy fails the step instead of losing the answer.
      post({ type: 'failed', callId, error: toStepError(err) });
    }
  };
  const failed = (err: unknown) => post({ type: 'failed', callId, error: toStepError(err) });
  if (!run) return message.step === 'close' ? done(undefined) : failed(new Error(`run ${runId} is not open on the executor thread`));
  perform(run.steps, message).then(done, failed);
}

/** The step asked for, as a promise (an action that throws before its first await fails the step, not the thread). */
async function perform(steps: RunSteps, { runId, step, args }: Extract<ToThread, { type: 'call' }>): Promise<unknown> {
  switch (step) {
    // It lets the run's connections go itself; the run stays listed until then, so an abort still reaches it.
    case 'dryRun': return steps.dryRun(args[0]).finally(() => runs.delete(runId));
    case 'resolve': return steps.resolve(args[0]);
    case 'check': return steps.check(args[0]);
    case 'plan': return steps.plan(args[0]);
    // The pipeline hands run the plan's payload, and verify the check and the output it received from this thread.
    case 'run': return steps.run(args[0], args[1]);
    case 'verify': return steps.verify(args[0], checkResultSchema.parse(args[1]), runOutputSchema.parse(args[2]));
    case 'close':
      runs.delete(runId);
      return steps.close(args[0] === true);
  }
}

/**
 * The runs' work gives way to the main thread, which acknowledges webhooks and writes the journal:
 * on a busy machine a run then waits a little for the CPU rather than every acknowledgement (at
 * 1,000 alerts/s on 2 CPUs: ack p99 91 and 81 → 58 and 58 ms; docs/performance.md, "The executor
 * thread gives way"). Where it cannot, the thread keeps the main thread's priority.
 */
function yieldToMainThread(): void {
  const failed = lowerOwnPriority();
  if (failed) log.warn({ err: failed }, 'cannot lower the executor thread\'s priority; it runs at the main thread\'s');
}
