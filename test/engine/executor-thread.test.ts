import t from 'tap';
import { vacuum } from '../../src/actions/postgres.js';
import { filesCleanup } from '../../src/actions/files-cleanup.js';
import type { AnyAction, Trigger } from '../../src/actions/contract.js';
import { InlineExecutor, type Executor, type RunSpec } from '../../src/engine/executor.js';
import { ThreadExecutor } from '../../src/engine/executor-thread.js';
import { RunAbort } from '../../src/engine/run-abort.js';
import { DRY_RUN_APPLICATION } from '../../src/engine/run-connections.js';
import { ShutDown } from '../../src/engine/stop.js';
import { ValidationError } from '../../src/errors.js';
import { Connections } from '../../src/systems/connections.js';
import { bufferLogger } from '../fixtures/log.js';
import { waitFor } from '../fixtures/ports.js';
import { testConfig } from '../actions/context.js';
import { slowVacuumTable, startTestPostgres, tableWithDeadTuples } from '../actions/postgres-fixture.js';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// remediation.executor: thread runs the actions' steps on a worker thread. What a run sees must
// not depend on where its steps ran: same answers, same error classes, same log lines, and its
// signal still cancels the work where it runs.

const server = await startTestPostgres(t);
await tableWithDeadTuples(server, 'postgres', 'orders');
await slowVacuumTable(server, 'slow', 'big');
const root = await mkdtemp(join(tmpdir(), 'upkeep-executor-'));
t.teardown(() => rm(root, { recursive: true, force: true }));
const config = testConfig({
  state: { dir: root },
  targets: { postgres: [{ name: 'main', url: server.url('postgres') }], files: [{ name: 'tmp', dir: join(root, 'files'), pattern: '*.tmp' }] },
});

// One thread for the tests below but the last (starting one under the TypeScript loader costs seconds).
const threadLog = bufferLogger();
const shared = new ThreadExecutor(config, threadLog.log);
t.teardown(() => shared.close());

function spec(action: AnyAction, log: RunSpec['log'], options: { dryRun?: boolean; trigger?: Trigger; abort?: RunAbort; progress?: RunSpec['progress'] } = {}): RunSpec {
  return {
    runId: `run-${Math.random().toString(36).slice(2)}`, action, dryRun: options.dryRun ?? false, deadline: Date.now() + 60_000,
    trigger: options.trigger ?? 'manual', log, abort: options.abort ?? new RunAbort(), progress: options.progress ?? (() => undefined),
  };
}

/** A dry run's steps as the pipeline calls them. */
async function dryRun(executor: Executor, params: unknown, log: RunSpec['log']): Promise<unknown> {
  const steps = executor.open(spec(vacuum, log, { dryRun: true }));
  try {
    const { params: resolved, check, plan } = await steps.dryRun(params);
    return { resolved, check, plan };
  } finally {
    await steps.close(false);
  }
}

t.test('a dry run on the thread gives what it gives inline, and refusals keep their class', async (t) => {
  const logger = bufferLogger();
  const connections = new Connections(config);
  t.teardown(() => connections.close());
  const inline = new InlineExecutor(config, connections, Date.now);
  const thread = shared;
  const params = vacuum.params.parse({ target: 'main', database: 'postgres', table: 'ORDERS' });
  const there = await dryRun(thread, params, logger.log);
  const here = await dryRun(inline, params, logger.log);
  t.same(there, here);
  t.match(there, { resolved: { table: '"public"."orders"' }, check: { proceed: true }, plan: { steps: [{ kind: 'sql', detail: 'VACUUM (ANALYZE) "public"."orders"' }] } });

  const unknown = vacuum.params.parse({ target: 'main', database: 'postgres', table: 'no_such_table' });
  const refusals = await Promise.all([thread, inline].map((executor) => dryRun(executor, unknown, logger.log).then(() => null, (err: unknown) => err)));
  t.ok(refusals.every((err) => err instanceof ValidationError), 'a ValidationError on the thread is one here (the run is rejected, not failed)');
  t.equal(refusals[0] instanceof Error && refusals[0].message, refusals[1] instanceof Error && refusals[1].message);
  t.equal(logger.text(), '', 'nothing logged');
});

t.test('a dry run is one step: it lets its connections go itself, and close() after it does nothing', async (t) => {
  const params = vacuum.params.parse({ target: 'main', database: 'postgres', table: 'orders' });
  const abort = new RunAbort();
  const onThread = shared.open(spec(vacuum, bufferLogger().log, { dryRun: true, abort }));
  t.equal(abort.listening, 1, 'an open run listens to its abort');
  const { params: resolved } = await onThread.dryRun(params);
  await t.rejects(onThread.check(resolved), /^run run-[0-9a-z]+ is not open on the executor thread$/, 'the thread closed the run when its dry run ended');
  await onThread.close(false);
  // The queue keeps a run's abort until its final line is durable: a listener left on it would keep the run's spec alive too.
  t.equal(abort.listening, 0, 'a closed run no longer does');

  const connections = new Connections(config);
  t.teardown(() => connections.close());
  const inline = new InlineExecutor(config, connections, Date.now);
  const pool = connections.postgresPool('main', 'postgres', DRY_RUN_APPLICATION, { max: 2 * config.remediation.dryRunConcurrency + 2, idleCloseMs: 10_000, timeoutSeconds: config.remediation.timeoutSeconds });
  const inlineAbort = new RunAbort();
  const steps = inline.open(spec(vacuum, bufferLogger().log, { dryRun: true, abort: inlineAbort }));
  t.equal(inlineAbort.listening, 1, 'an open inline run listens to its abort');
  await steps.dryRun(params);
  t.equal(inlineAbort.listening, 0, 'an inline dry run stops listening once it lets its connections go');
  t.same([pool.totalCount, pool.idleCount], [2, 2], 'its session, and the one of the reads dry runs share (CatalogReads), are back in the pool before close()');
  await steps.close(false);
  t.same([pool.totalCount, pool.idleCount], [2, 2], 'and are not given back twice');
  const again = inline.open(spec(vacuum, bufferLogger().log, { dryRun: true }));
  await again.dryRun(params);
  await again.close(false);
  t.same([pool.totalCount, pool.idleCount], [2, 2], 'the next dry run borrows the same sessions');
});

t.test('a real run on the thread: its log lines carry the run\'s bindings', async (t) => {
  const dir = join(root, 'files');
  await mkdir(dir, { recursive: true });
  const old = new Date(Date.now() - 3 * 86_400_000);
  for (const name of ['a.tmp', 'b.tmp']) {
    await writeFile(join(dir, name), 'x'.repeat(100));
    await utimes(join(dir, name), old, old);
  }
  const logger = bufferLogger();
  const runLog = logger.log.child({ runId: 'r1', remediation: 'files.cleanup' });
  const steps = shared.open({ ...spec(filesCleanup, runLog), runId: 'r1' });
  const params = await steps.resolve(filesCleanup.params.parse({ name: 'tmp', olderThanHours: 24 }));
  const check = await steps.check(params);
  const plan = await steps.plan(params);
  const output = await steps.run(params, plan.payload);
  const verified = await steps.verify(params, check, output);
  await steps.close(false);
  t.equal(verified.ok, true, verified.detail);
  t.same(await readdir(dir), []);
  const lines = logger.lines().map(({ time: _time, pid: _pid, hostname: _hostname, ...rest }) => rest);
  t.same(lines, [{ level: 30, runId: 'r1', remediation: 'files.cleanup', name: 'tmp', deleted: 2, freedBytes: 200, msg: 'cleanup finished' }]);
});

t.test('a long run\'s progress crosses from the thread; aborting the run cancels the statement where it runs, and the error comes back with its SQLSTATE', async (t) => {
  const abort = new RunAbort();
  const progress: Array<Readonly<Record<string, unknown>>> = [];
  const steps = shared.open(spec(vacuum, bufferLogger().log, { abort, progress: (detail) => progress.push(detail) }));
  // target main watches every database (databases: auto), so `slow` is in scope.
  const params = await steps.resolve(vacuum.params.parse({ target: 'main', database: 'slow', table: 'big', progressSeconds: 1 }));
  t.match(await steps.check(params), { proceed: true });
  const plan = await steps.plan(params);
  const running = steps.run(params, plan.payload).then(() => null, (err: unknown) => err);
  await waitFor('the vacuum\'s progress', () => {
    if (progress.length === 0) throw new Error('none yet');
    return Promise.resolve();
  }, 60_000, 100);
  t.match(progress[0], { statement: 'VACUUM (ANALYZE) "public"."big"', heapBlocks: Number });
  abort.abort(new ShutDown('upkeep shut down'));
  // The pipeline reads a run cut off at shutdown as interrupted from its own abort; the step's error is the cancellation.
  t.match(await running, { message: 'canceling statement due to user request', code: '57014' });
  await steps.close(true);
  await waitFor('the vacuum gone', async () => {
    const rows = await server.query("select pid from pg_stat_activity where query like 'VACUUM%' and state = 'active'");
    if (rows.length > 0) throw new Error('still running');
  });
  t.pass('no vacuum left running on the server');
  t.equal(threadLog.text(), '', 'the thread itself logged nothing');
});

t.test('a thread that dies fails the steps it had in hand, says so once, and the next run gets a new thread', async (t) => {
  const logger = bufferLogger();
  const thread = new ThreadExecutor(config, logger.log);
  t.teardown(() => thread.close());
  // An action the thread's registry does not have: opening it there throws, which ends the thread.
  const stranger: AnyAction = { ...vacuum, name: 'no.such.action' };
  const steps = thread.open(spec(stranger, logger.log));
  await t.rejects(steps.resolve({}), /^the executor thread stopped: /);
  await t.rejects(steps.check({}), /^the executor thread stopped$/, 'no later step of the run goes to the new thread');
  await steps.close(true);
  t.match(logger.lines(), [{ level: 50, msg: 'the executor thread stopped with runs in hand; their steps fail', err: { message: /unknown remediation no\.such\.action/ } }]);
  const again = await dryRun(thread, vacuum.params.parse({ target: 'main', database: 'postgres', table: 'orders' }), logger.log);
  t.match(again, { check: { proceed: Boolean } }, 'a new thread answers');
});
