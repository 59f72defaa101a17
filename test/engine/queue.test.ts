import { Registry } from 'prom-client';
import t from 'tap';
import { z } from 'zod';
import type { AnyAction } from '../../src/actions/contract.js';
import { Engine, QueueFull } from '../../src/engine/engine.js';
import { RunQueue, type Job } from '../../src/engine/queue.js';
import type { RunRequest } from '../../src/engine/submitter.js';
import { startSchedule } from '../../src/triggers/schedule.js';
import { collector } from '../fixtures/gc.js';
import { waitFor } from '../fixtures/ports.js';
import { capturedLogger, journalLines, tempDir, testConfig } from '../http/helpers.js';
import { gatedAction } from './gated-action.js';

t.test('remediation.maxQueued: a full queue refuses a run, records nothing, and does not claim its alert', async (t) => {
  const stateDir = await tempDir(t);
  const { action, open } = gatedAction();
  const captured = capturedLogger('info');
  const config = testConfig({ state: { dir: stateDir }, remediation: { concurrency: 1, maxQueued: 2 } });
  const engine = await Engine.create({ config, log: captured.log, actions: [action] });
  t.teardown(() => engine.close());
  const alert = (fingerprint: string) => ({ fingerprint, startsAt: '2026-01-01T00:00:00Z', alertname: 'A', labels: { alertname: 'A' } });

  t.equal(engine.queueRoom(), 2);
  const first = engine.submit({ remediation: 'test.gated', params: { n: 1 }, trigger: 'manual' });
  const second = engine.submit({ remediation: 'test.gated', params: { n: 2 }, trigger: 'alert', alert: alert('fp-2') });
  t.equal(engine.queueRoom(), 0, 'both wait until their journal lines are durable');
  t.throws(() => engine.submit({ remediation: 'test.gated', params: { n: 3 }, trigger: 'alert', alert: alert('fp-3') }),
    { name: 'QueueFull', limit: 2, message: 'the run queue is full: at most 2 runs may wait (remediation.maxQueued); retry later' }, 'the third is refused');
  t.throws(() => engine.submit({ remediation: 'test.gated', params: { n: 4 }, trigger: 'manual' }), { name: 'QueueFull' });

  await Promise.all([first.journalled, second.journalled]);
  open();
  t.equal((await first.done).status, 'success');
  t.equal((await second.done).status, 'success');
  t.equal(engine.queueRoom(), 2, 'the queue drained');
  const again = await engine.submit({ remediation: 'test.gated', params: { n: 3 }, trigger: 'alert', alert: alert('fp-3') }).done;
  t.equal(again.status, 'success', 'the refused alert runs when sent again: it was never taken for a duplicate');

  const runs = new Set((await journalLines(stateDir)).map((record) => record.id));
  t.equal(runs.size, 3, 'the journal holds the three runs that were accepted and nothing of the refused ones');
  t.same(captured.text().split('\n').filter((line) => line.includes('"run finished"')).map((line) => (JSON.parse(line) as { status: string }).status), ['success', 'success', 'success']);
});

t.test('a schedule tick that finds the queue full runs nothing and says so', async (t) => {
  const captured = capturedLogger('info');
  const config = testConfig({ schedule: [{ name: 'every-second', cron: '* * * * * *', remediation: 'test.gated', params: { n: 1 } }] });
  const submitter = { claimTick: async () => ({ runId: 'tick-run' }), submit: (): never => { throw new QueueFull(1); } };
  const schedule = startSchedule({ config, submitter, registry: new Registry(), log: captured.log });
  t.teardown(() => schedule.stop());
  const line = await waitFor('the refused tick to be logged', async () => {
    const found = captured.text().split('\n').find((text) => text.includes('scheduled run could not be submitted'));
    if (found === undefined) throw new Error('not yet');
    return z.object({ level: z.number(), job: z.string(), err: z.object({ message: z.string() }) }).parse(JSON.parse(found));
  }, 10_000, 50);
  t.same({ level: line.level, job: line.job, message: line.err.message }, { level: 50, job: 'every-second', message: 'the run queue is full: at most 1 runs may wait (remediation.maxQueued); retry later' });
});

t.test('dry runs have their own slots (dryRunConcurrency): they never wait behind real runs, and a resolved alert cancels a waiting one', async (t) => {
  const gated = gatedAction();
  let openCheck: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => { openCheck = resolve; });
  const open = () => { openCheck(); gated.open(); };
  const checking: number[] = [];
  // Runs wait in check (dry runs stop after the plan, so a gate in run would not hold them).
  const action = {
    ...gated.action,
    check: async (params: { n: number }) => {
      checking.push(params.n);
      await gate;
      return { proceed: true, reason: 'go' };
    },
  };
  const config = testConfig({ state: { dir: await tempDir(t) }, remediation: { concurrency: 1, dryRunConcurrency: 2 } });
  const engine = await Engine.create({ config, log: capturedLogger('info').log, actions: [action] });
  t.teardown(() => engine.close());
  const alert = (fingerprint: string) => ({ fingerprint, startsAt: '2026-01-01T00:00:00Z', alertname: 'A', labels: { alertname: 'A' } });
  const submit = (n: number, dryRun: boolean) => engine.submit({ remediation: 'test.gated', params: { n }, trigger: 'alert', dryRun, alert: alert(`fp-${n}`) });

  const runs = [submit(1, false), submit(2, false), submit(3, true), submit(4, true), submit(5, true)];
  await Promise.all(runs.map((run) => run.journalled));
  await waitFor('one real and two dry runs to be checking', async () => { if (checking.length < 3) throw new Error(`${checking.length} so far`); }, 10_000, 20);
  t.same([...checking].sort(), [1, 3, 4], 'the real run 2 waits for the real slot, the dry run 5 for a dry one; the dry runs 3 and 4 did not wait behind run 1');

  const [cancelled] = engine.cancelQueued('fp-5', 'alert resolved before the run started');
  t.same({ id: cancelled?.id, status: cancelled?.status }, { id: runs[4]?.runId, status: 'cancelled' }, 'a waiting dry run is cancelled by its alert resolving');
  open();
  t.same(await Promise.all(runs.map(async (run) => (await run.done).status)), ['success', 'success', 'dry_run', 'dry_run', 'cancelled']);
  t.same([...checking].sort(), [1, 2, 3, 4], 'the cancelled run never started');
});

t.test("a run's slot is free for the next one once its work is done, while its final line waits for its fsync; shutdown still waits for that line", async (t) => {
  const { action } = gatedAction();
  const durable: (() => void)[] = [];
  const started: string[] = [];
  const queue = new RunQueue({ maxQueued: 10, concurrency: 1, dryRunConcurrency: 1 }, async (job, _controller, release) => {
    started.push(job.record.id);
    // The work is done and the final line handed over: the slot goes, the fsync is still to come.
    release();
    release();
    await new Promise<void>((resolve) => durable.push(resolve));
    return { ...job.record, status: 'success' };
  });
  const settled: string[] = [];
  const job = (id: string): Job => ({
    record: { id, remediation: action.name, trigger: 'manual', status: 'queued', params: {}, queuedAt: new Date(0).toISOString() },
    request: { remediation: action.name, params: {}, trigger: 'manual' }, action: action as AnyAction, params: {}, settle: (record) => { settled.push(record.id); },
  });
  for (const id of ['a', 'b', 'c']) queue.push(job(id));
  queue.pump();
  t.same(started, ['a', 'b', 'c'], 'with one slot, each run started once the one before had released it (a second release changes nothing)');
  t.same(settled, [], 'none is settled before its line is durable');
  const closing = queue.finishActive(0, new Error('stop'));
  let closed = false;
  void closing.then(() => { closed = true; });
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(closed, false, 'shutdown waits for the runs whose slot was released');
  for (const resolve of durable) resolve();
  await closing;
  t.same([...settled].sort(), ['a', 'b', 'c'], 'each settled once its line was durable');
});

/** Queues one alert's run; only the returned WeakRef points at its request. */
function pushAlertRun(queue: RunQueue, action: AnyAction, settled: string[]): WeakRef<RunRequest> {
  const request: RunRequest = { remediation: action.name, params: {}, trigger: 'alert' };
  queue.push({
    record: { id: 'a', remediation: action.name, trigger: 'alert', status: 'queued', params: {}, queuedAt: new Date(0).toISOString() },
    request, action, params: {}, settle: (record) => { settled.push(record.id); },
  });
  return new WeakRef(request);
}

t.test('while a run waits for its final line\'s fsync, the queue holds its id and settle, not its job (the alert, its labels)', async (t) => {
  const gc = collector();
  const { action } = gatedAction();
  let durable: () => void = () => undefined;
  const queue = new RunQueue({ maxQueued: 10, concurrency: 1, dryRunConcurrency: 1 }, (job, _controller, release) => {
    // As the pipeline does: the work is done, the final line handed over, and only the record is kept.
    const record = { ...job.record, status: 'success' as const };
    release();
    return new Promise((resolve) => { durable = () => resolve(record); });
  });
  const settled: string[] = [];
  const request = pushAlertRun(queue, action as AnyAction, settled);
  queue.pump();
  // A WeakRef's target is kept until the current job ends.
  await new Promise((resolve) => setImmediate(resolve));
  gc();
  t.equal(request.deref(), undefined, 'the request was collected while the run waited');
  t.equal(queue.activeCount(), 1, 'the run is still active');
  durable();
  await queue.finishActive(0, new Error('stop'));
  t.same(settled, ['a'], 'and settled once its line was durable');
});
