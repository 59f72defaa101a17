import { hostname } from 'node:os';
import type { Action } from '../../src/actions/contract.js';
import t from 'tap';
import { Engine } from '../../src/engine/engine.js';
import { idempotencyKey } from '../../src/engine/guards/idempotency.js';
import type { RunRecord } from '../../src/engine/journal.js';
import { openStateStore } from '../../src/engine/state/open.js';
import { newRunId } from '../../src/engine/state/run-id.js';
import { bufferLogger } from '../fixtures/log.js';
import { startPostgres } from '../fixtures/postgres.js';
import { tempDir, testConfig } from '../http/helpers.js';
import { flakyAction } from './gated-action.js';

/**
 * Which outcomes keep an alert's claim, on both state stores: a run that did the work (or decided
 * it was not needed) keeps it, so a re-delivery is a duplicate; a failed or interrupted run gives
 * it back, so a re-delivery runs again.
 */
const server = await startPostgres();
t.teardown(() => server.destroy());

const alert = { fingerprint: 'f-1', startsAt: '2024-03-05T00:55:00Z', alertname: 'A', labels: { alertname: 'A' } };
const request = { remediation: 'test.action', params: { n: 1 }, trigger: 'alert' as const, alert };

let schemas = 0;

const kinds = [
  { name: 'file store', state: async (t: Parameters<typeof tempDir>[0]) => ({ dir: await tempDir(t) }) },
  {
    name: 'PostgreSQL store',
    state: async (t: Parameters<typeof tempDir>[0]) => {
      schemas += 1;
      return { dir: await tempDir(t), postgres: { url: server.url(), schema: `claims_${schemas}` } };
    },
  },
];

for (const kind of kinds) {
  t.test(`${kind.name}: a failed run's alert runs again when re-delivered; a success's re-delivery is a duplicate`, async (t) => {
    const action = flakyAction();
    const config = testConfig({ state: await kind.state(t) });
    const engine = await Engine.create({ config, log: bufferLogger().log, actions: [action] });
    t.teardown(() => engine.close());
    action.failing = true;
    const failed = await engine.submit(request).done;
    t.equal(failed.status, 'failure');
    action.failing = false;
    const retried = await engine.submit(request).done;
    t.equal(retried.status, 'success', 'the failure gave the claim back');
    const again = await engine.submit(request).done;
    t.same([again.status, again.duplicateOf], ['duplicate', retried.id], 'the success keeps it');
    t.equal(action.executed, 2);
  });

  t.test(`${kind.name}: a run a crash left running is interrupted at the next start, and its alert runs again`, async (t) => {
    const action = flakyAction();
    const captured = bufferLogger();
    const config = testConfig({ state: await kind.state(t) });
    // What a killed upkeep left: the run's claim, and its record still running under a dead pid.
    const left = await openStateStore(config, captured.log, Date.now);
    const running: RunRecord = {
      id: 'crashed-run', remediation: 'test.action', trigger: 'alert', status: 'running', params: { n: 1 }, alert,
      queuedAt: '2024-03-05T00:56:00.000Z', startedAt: '2024-03-05T00:56:01.000Z', host: hostname(), pid: 999_999_999,
    };
    t.equal(await left.guards.claimAlert(idempotencyKey(alert, 'test.action'), running.id, Date.now()), undefined);
    await left.append(running).durable;
    await left.close();

    const engine = await Engine.create({ config, log: captured.log, actions: [action] });
    t.teardown(() => engine.close());
    t.equal((await engine.get(running.id))?.status, 'interrupted');
    const retried = await engine.submit(request).done;
    t.equal(retried.status, 'success', 'the interrupted run gave the claim back');
    t.equal(action.executed, 1);
    t.same(captured.lines().filter((line) => line.level === 40).map((line) => [line.msg, line.runId]),
      [['run was left unfinished by a previous upkeep; journalled as interrupted', running.id]]);
  });

  t.test(`${kind.name}: a run cancelled at shutdown before it started gives its alert back, and a re-delivery after the restart runs it`, async (t) => {
    const action = flakyAction();
    let started = () => undefined as void;
    const running = new Promise<void>((resolve) => { started = resolve; });
    // The first run holds the only slot until shutdown aborts it.
    const blocking: Action<{ n: number }> = {
      ...action,
      run: (_params, _payload, context) => new Promise((_resolve, reject) => {
        started();
        context.signal.addEventListener('abort', () => reject(context.signal.reason instanceof Error ? context.signal.reason : new Error('aborted')), { once: true });
      }),
    };
    const config = testConfig({ state: await kind.state(t), remediation: { concurrency: 1 } });
    const engine = await Engine.create({ config, log: bufferLogger().log, actions: [blocking] });
    const waiting = { ...request, alert: { ...alert, fingerprint: 'f-waiting' } };
    const first = engine.submit(request);
    await running;
    const second = engine.submit(waiting);
    t.equal(await second.journalled, 'queued');
    await engine.close();
    t.same([(await first.done).status, (await second.done).status], ['interrupted', 'cancelled']);
    t.equal((await second.done).reason, 'upkeep shut down before the run started');

    const restarted = await Engine.create({ config, log: bufferLogger().log, actions: [action] });
    t.teardown(() => restarted.close());
    t.same([(await restarted.submit(waiting).done).status, (await restarted.submit(request).done).status], ['success', 'success'],
      'both alerts run when re-delivered: neither run did its work');
    t.equal(action.executed, 2);
  });

  t.test(`${kind.name}: a claim whose run never reached the journal (upkeep killed in between) is taken over by a re-delivery once a minute old, never younger nor past the journal's retention`, async (t) => {
    const action = flakyAction();
    const captured = bufferLogger();
    const config = testConfig({ state: { ...await kind.state(t), retention: '1h' } });
    // What a killed upkeep left: three alerts' claims, by runs that never wrote their queued line.
    const left = await openStateStore(config, captured.log, Date.now);
    const claimed = async (fingerprint: string, agoMs: number) => {
      const holder = newRunId(Date.now() - agoMs);
      const own = { ...alert, fingerprint };
      t.equal(await left.guards.claimAlert(idempotencyKey(own, 'test.action'), holder, Date.now() - agoMs), undefined);
      return { holder, request: { ...request, alert: own } };
    };
    const orphan = await claimed('f-orphan', 2 * 60_000);
    const young = await claimed('f-young', 10_000);
    const old = await claimed('f-old', 2 * 3_600_000);
    await left.close();

    const engine = await Engine.create({ config, log: captured.log, actions: [action] });
    t.teardown(() => engine.close());
    const taken = await engine.submit(orphan.request).done;
    t.equal(taken.status, 'success', 'the orphaned claim was taken over: the alert ran');
    t.same([(await engine.submit(orphan.request).done).duplicateOf], [taken.id], 'and its next re-delivery is a duplicate of that run');
    const waiting = await engine.submit(young.request).done;
    t.same([waiting.status, waiting.duplicateOf], ['duplicate', young.holder], 'a claim 10 s old may be a live peer\'s: left alone');
    const expired = await engine.submit(old.request).done;
    t.same([expired.status, expired.duplicateOf], ['duplicate', old.holder], 'a claim older than state.retention may be a run the journal let go of: left alone');
    t.equal(action.executed, 1);
    t.same(captured.lines().filter((line) => line.level === 40).map((line) => [line.msg, line.runId, line.claimedBy, line.reason]),
      [["the alert's claim should have been given back; claiming it again", taken.id, orphan.holder, 'the run that held it never reached the journal (upkeep stopped in between)']]);
  });

  t.test(`${kind.name}: a claim still held by a run that failed (its release was lost) is taken over by a re-delivery; a success's is not`, async (t) => {
    const action = flakyAction();
    const captured = bufferLogger();
    const config = testConfig({ state: await kind.state(t) });
    // What an upkeep whose release of a failed run's claim could not be written left after a restart.
    const left = await openStateStore(config, captured.log, Date.now);
    const finished = async (fingerprint: string, status: 'failure' | 'success') => {
      const own = { ...alert, fingerprint };
      const run: RunRecord = {
        id: newRunId(Date.now()), remediation: 'test.action', trigger: 'alert', status, params: { n: 1 }, alert: own,
        queuedAt: new Date().toISOString(), startedAt: new Date().toISOString(), finishedAt: new Date().toISOString(), lockKey: 'test.action:1',
      };
      t.equal(await left.guards.claimAlert(idempotencyKey(own, 'test.action'), run.id, Date.now()), undefined);
      await left.append(run).durable;
      return { run, request: { ...request, alert: own } };
    };
    const failed = await finished('f-failed', 'failure');
    const succeeded = await finished('f-succeeded', 'success');
    await left.close();

    const engine = await Engine.create({ config, log: captured.log, actions: [action] });
    t.teardown(() => engine.close());
    const retried = await engine.submit(failed.request).done;
    t.equal(retried.status, 'success', 'the failed run\'s claim was taken over: the alert ran again');
    const again = await engine.submit(succeeded.request).done;
    t.same([again.status, again.duplicateOf], ['duplicate', succeeded.run.id], 'a success keeps its claim');
    t.equal(action.executed, 1);
    t.same(captured.lines().filter((line) => line.level === 40).map((line) => [line.msg, line.runId, line.claimedBy, line.reason]),
      [["the alert's claim should have been given back; claiming it again", retried.id, failed.run.id, 'the run that held it ended failure, which gives the alert back, but the claim was not released']]);
  });
}
