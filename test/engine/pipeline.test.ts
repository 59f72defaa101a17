import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { z } from 'zod';
import { Connections } from '../../src/systems/connections.js';
import { Engine } from '../../src/engine/engine.js';
import { Locks, lockName, redisLockHolder, redisLockKey } from '../../src/engine/locks.js';
import { openStateStore } from '../../src/engine/state/open.js';
import type { Action, LockSpec, Risk } from '../../src/actions/contract.js';
import type { RunRecord } from '../../src/engine/journal.js';
import { bufferLogger } from '../fixtures/log.js';
import { waitFor } from '../fixtures/ports.js';
import { startRedis } from '../fixtures/redis.js';
import { capturedLogger, journalLines, tempDir, testConfig } from '../http/helpers.js';
import { startTestPostgres } from '../actions/postgres-fixture.js';

/** An in-process action whose behaviour each test sets; it touches no external system. */
function testAction(behaviour: {
  name?: string; risk?: Risk; lock?: LockSpec; proceed?: boolean; verifyOk?: boolean;
  run?: (signal: AbortSignal) => Promise<void>; fail?: unknown; verifyFails?: Error;
} = {}): Action<{ n: number }> {
  return {
    name: behaviour.name ?? 'test.action',
    description: 'test',
    params: z.strictObject({ n: z.coerce.number() }),
    risk: () => behaviour.risk ?? 'safe',
    resolve: async (params) => params,
    lock: () => behaviour.lock ?? { kind: 'local', key: 'k' },
    check: async () => ({ proceed: behaviour.proceed ?? true, reason: behaviour.proceed === false ? 'nothing to do' : 'go' }),
    plan: async (params) => ({ steps: [{ kind: 'exec', detail: `work ${params.n}` }], payload: { n: params.n } }),
    run: async (_params, _plan, context) => {
      if (behaviour.fail !== undefined) throw behaviour.fail;
      await behaviour.run?.(context.signal);
      return { detail: { done: true } };
    },
    verify: async () => {
      if (behaviour.verifyFails) throw behaviour.verifyFails;
      return { ok: behaviour.verifyOk ?? true, detail: behaviour.verifyOk === false ? 'effect not seen' : 'fine' };
    },
  };
}

async function engineWith(t: Parameters<typeof tempDir>[0], actions: Action<{ n: number }>[], remediation: Record<string, unknown> = {}, stateDir?: string) {
  const config = testConfig({ state: { dir: stateDir ?? await tempDir(t) }, remediation });
  const engine = await Engine.create({ config, log: bufferLogger().log, actions });
  t.teardown(() => engine.close());
  return engine;
}

t.test('outcomes: verification failure, errors, dry run of a cleared condition, invalid params, unknown remediation', async (t) => {
  const engine = await engineWith(t, [
    testAction({ name: 'unverified', verifyOk: false }),
    testAction({ name: 'thrower', fail: 'a string, not an Error' }),
    testAction({ name: 'cleared', proceed: false }),
  ]);
  const unverified = await engine.submit({ remediation: 'unverified', params: { n: 1 }, trigger: 'manual' }).done;
  t.equal(unverified.status, 'failure');
  t.equal(unverified.error, 'verification failed: effect not seen');
  const thrown = await engine.submit({ remediation: 'thrower', params: { n: 1 }, trigger: 'manual' }).done;
  t.equal(thrown.error, 'a string, not an Error');
  const dry = await engine.submit({ remediation: 'cleared', params: { n: 2 }, trigger: 'manual', dryRun: true }).done;
  t.equal(dry.status, 'dry_run');
  t.equal(dry.reason, 'dry run: condition cleared (nothing to do); a real run would be skipped');
  t.same(dry.plan, [{ kind: 'exec', detail: 'work 2' }]);
  const invalid = await engine.submit({ remediation: 'cleared', params: { n: 'many' }, trigger: 'cli' }).done;
  t.equal(invalid.status, 'rejected');
  t.match(invalid.reason, /^invalid params: n: /);
  const unknown = await engine.submit({ remediation: 'nope', params: {}, trigger: 'schedule' }).done;
  t.equal(unknown.status, 'rejected');
  t.equal(unknown.reason, 'unknown remediation "nope"; the remediations are unverified, thrower, cleared');
  const typo = await engine.submit({ remediation: 'thrower.', params: {}, trigger: 'cli' }).done;
  t.equal(typo.reason, 'unknown remediation "thrower." (did you mean "thrower"?)');
});

t.test('a verification that cannot run (its server gone) fails the run, and the journal keeps what the run did', async (t) => {
  const dir = await tempDir(t);
  const engine = await engineWith(t, [testAction({ verifyFails: new Error('Connection terminated unexpectedly') })], {}, dir);
  const run = await engine.submit({ remediation: 'test.action', params: { n: 1 }, trigger: 'manual' }).done;
  t.match(run, { status: 'failure', error: 'Connection terminated unexpectedly', output: { done: true } });
  const journalled = (await journalLines(dir)).filter((line) => line.id === run.id).at(-1);
  t.match(journalled, { status: 'failure', output: { done: true } }, 'the final journal line holds the output');
});

t.test('cooldown applies to automatic runs per (remediation, target object), not to manual ones', async (t) => {
  const engine = await engineWith(t, [testAction()], { cooldownSeconds: 600 });
  const first = await engine.submit({ remediation: 'test.action', params: { n: 1 }, trigger: 'schedule' }).done;
  t.equal(first.status, 'success');
  t.equal(first.lockKey, 'test.action local:local:k');
  const second = await engine.submit({ remediation: 'test.action', params: { n: 1 }, trigger: 'schedule' }).done;
  t.equal(second.status, 'skipped');
  t.equal(second.skipCode, 'cooldown');
  t.match(second.reason, /^cooldown: test.action local:local:k ran less than 600s ago; \d+s left$/);
  t.equal((await engine.submit({ remediation: 'test.action', params: { n: 1 }, trigger: 'manual' }).done).status, 'success');
});

t.test('an action that ignores its deadline is abandoned and the run fails', async (t) => {
  const engine = await engineWith(t, [testAction({ run: () => new Promise((resolve) => setTimeout(resolve, 30_000).unref()) })]);
  const run = await engine.submit({ remediation: 'test.action', params: { n: 1 }, trigger: 'manual', timeoutSeconds: 0.2 }).done;
  t.equal(run.status, 'failure');
  t.equal(run.error, 'deadline of 0.2s passed', 'said once: the abandoned step rejects with the deadline itself');
});

t.test('at shutdown, a run whose step ignores its abort is given up on after abandonAfterMs, not after the deadline\'s 5 s', async (t) => {
  let started: () => void = () => undefined;
  const running = new Promise<void>((resolve) => { started = resolve; });
  const engine = await engineWith(t, [testAction({ run: () => { started(); return new Promise(() => undefined); } })]);
  const run = engine.submit({ remediation: 'test.action', params: { n: 1 }, trigger: 'manual' });
  await running;
  const closed = engine.close(0, 'upkeep shut down', 50).then(() => 'closed');
  const later = new Promise((resolve) => setTimeout(resolve, 3000, 'still closing after 3 s').unref());
  t.equal(await Promise.race([closed, later]), 'closed');
  t.match(await run.done, { status: 'interrupted', reason: 'upkeep shut down during the run', error: 'upkeep shut down' });
  t.equal(await Promise.race([engine.close().then(() => 'closed'), later]), 'closed', 'a second close waits for the first, which is done');
});

t.test('shutdown interrupts running runs, cancels queued ones and refuses new ones', async (t) => {
  let started: () => void = () => undefined;
  const running = new Promise<void>((resolve) => { started = resolve; });
  const waitForAbort = (signal: AbortSignal) => {
    started();
    return new Promise<void>((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
  };
  const engine = await engineWith(t, [testAction({ run: waitForAbort })], { concurrency: 1 });
  const first = engine.submit({ remediation: 'test.action', params: { n: 1 }, trigger: 'manual' });
  const second = engine.submit({ remediation: 'test.action', params: { n: 2 }, trigger: 'manual' });
  await running;
  await engine.close();
  t.equal((await first.done).status, 'interrupted');
  t.equal((await first.done).reason, 'upkeep shut down during the run');
  t.equal((await second.done).status, 'cancelled');
  const late = await engine.submit({ remediation: 'test.action', params: { n: 3 }, trigger: 'manual' }).done;
  t.equal(late.status, 'cancelled');
  await engine.close();
});

t.test('shutdown with a grace: a run that finishes within it succeeds, one still running when it runs out is interrupted', async (t) => {
  const gates: (() => void)[] = [];
  const started: number[] = [];
  const gated = (signal: AbortSignal) => new Promise<void>((resolve, reject) => {
    started.push(gates.length);
    gates.push(resolve);
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
  const captured = bufferLogger();
  // Two actions, each with its own lock, so both run at once.
  const actions = ['a', 'b'].map((key) => testAction({ name: `test.${key}`, lock: { kind: 'local', key }, run: gated }));
  const engine = await Engine.create({ config: testConfig({ state: { dir: await tempDir(t) }, remediation: { concurrency: 2 } }), log: captured.log, actions });
  t.teardown(() => engine.close());
  const finishing = engine.submit({ remediation: 'test.a', params: { n: 1 }, trigger: 'manual' });
  const stuck = engine.submit({ remediation: 'test.b', params: { n: 2 }, trigger: 'manual' });
  const queued = engine.submit({ remediation: 'test.a', params: { n: 3 }, trigger: 'manual' });
  await waitFor('both slots running', async () => { if (started.length < 2) throw new Error(`${started.length} running`); });
  const closing = engine.close(300);
  t.equal((await queued.done).status, 'cancelled', 'a queued run does not start once shutdown began');
  gates[0]?.();
  t.equal((await finishing.done).status, 'success', 'the run that finished inside the grace succeeded');
  await closing;
  const interrupted = await stuck.done;
  t.equal(interrupted.status, 'interrupted');
  t.equal(interrupted.reason, 'upkeep shut down during the run');
  t.same(captured.lines().filter((line) => line.msg !== 'run finished').map(({ level, msg, runs, graceSeconds }) => ({ level, msg, runs, graceSeconds })), [
    { level: 30, msg: 'waiting for the runs in flight to finish', runs: 2, graceSeconds: 0.3 },
    { level: 40, msg: 'runs still in flight when the shutdown grace ran out are interrupted', runs: 1, graceSeconds: 0.3 },
  ]);
});

t.test('shutdown with a grace does not wait when no run is in flight, nor once the last one ended', async (t) => {
  const captured = bufferLogger();
  const engine = await Engine.create({ config: testConfig({ state: { dir: await tempDir(t) } }), log: captured.log, actions: [testAction()] });
  t.equal((await engine.submit({ remediation: 'test.action', params: { n: 1 }, trigger: 'manual' }).done).status, 'success');
  const closed = await Promise.race([engine.close(60_000).then(() => 'closed'), new Promise((resolve) => { setTimeout(resolve, 10_000, 'waited').unref(); })]);
  t.equal(closed, 'closed');
  t.same(captured.lines().filter((line) => String(line.msg).includes('in flight')), [], 'nothing said about runs in flight');
});

t.test('journal: torn lines are skipped, dead owners\' runs are interrupted, live owners\' are left alone', async (t) => {
  const stateDir = await tempDir(t);
  await mkdir(join(stateDir, 'journal'), { recursive: true });
  const base = { remediation: 'gone.action', trigger: 'manual', params: {}, queuedAt: '2024-01-01T00:00:00.000Z', host: hostname() };
  const lines = [
    { ...base, id: 'queued-dead', status: 'queued', pid: 999_999_999 },
    { ...base, id: 'running-live', status: 'running', pid: process.ppid },
    { ...base, id: 'ok', status: 'success', finishedAt: '2024-01-01T00:00:01.000Z', queuedAt: '2024-01-01T00:00:02.000Z' },
  ];
  await writeFile(join(stateDir, 'journal', 'runs.jsonl'), `${lines.map((line) => JSON.stringify(line)).join('\n')}\n{"id": "not a record"}\n{"torn`);
  const captured = capturedLogger('warn');
  const engine = await Engine.create({ config: testConfig({ state: { dir: stateDir } }), log: captured.log, actions: [testAction()] });
  t.teardown(() => engine.close());
  t.equal((await engine.get('queued-dead'))?.status, 'interrupted');
  t.equal((await engine.get('queued-dead'))?.reason, 'upkeep stopped before the run started');
  t.equal((await engine.get('running-live'))?.status, 'running', 'the parent process is alive: not ours to interrupt');
  t.match(captured.text(), /"lines":2.*journal lines could not be read/);
  t.same((await engine.list({ status: 'success' })).runs.map((run: RunRecord) => run.id), ['ok']);
  t.same((await engine.list({}, null, 1)).runs.map((run: RunRecord) => run.id), ['ok'], 'newest first');
  const metrics = await engine.metrics.lastSuccess.get();
  t.same(metrics.values.map((value) => value.value), [], 'a success of an unknown remediation is not exported');
});

t.test('the journal is created on the first append and appended with fsync', async (t) => {
  const stateDir = await tempDir(t);
  const config = testConfig({ state: { dir: stateDir } });
  const store = await openStateStore(config, bufferLogger().log, Date.now);
  await store.close();
  t.same(await readdir(stateDir), [], 'a store that never ran anything wrote nothing');
  const engine = await engineWith(t, [testAction()], {}, stateDir);
  await engine.submit({ remediation: 'test.action', params: { n: 1 }, trigger: 'manual' }).done;
  t.same((await journalLines(stateDir)).map((line) => line.status), ['queued', 'running', 'running', 'success'], 'queued, started, planned, finished');
  const dry = engine.submit({ remediation: 'test.action', params: { n: 2 }, trigger: 'manual', dryRun: true });
  await dry.done;
  const dryLines = (await journalLines(stateDir)).filter((line) => line.id === dry.runId);
  t.same(dryLines.map((line) => line.status), ['queued', 'dry_run'], 'a dry run: queued, then its final line, with no running line');
  t.type(dryLines[1]?.startedAt, 'string', 'its start is in the final line');
});

t.test('locks: Redis SET NX PX with a short TTL renewed while held, an owner-checked release and a named holder; Postgres advisory locks across replicas', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.destroy());
  const pg = await startTestPostgres(t);
  const config = testConfig({ targets: { redis: [{ name: 'cache', url: redis.url }], postgres: [{ name: 'main', url: pg.url() }] } });
  const replicaA = new Connections(config);
  const replicaB = new Connections(config);
  t.teardown(async () => { await replicaA.close(); await replicaB.close(); });
  // A one-second TTL here (30 s in production), so expiry and renewal show in a test.
  const locksA = new Locks(replicaA, { redisTtlMs: 1000 });
  const locksB = new Locks(replicaB, { redisTtlMs: 1000 });
  const client = redis.client();
  t.teardown(() => client.disconnect());

  const redisSpec: LockSpec = { kind: 'redis', target: 'cache', key: 'bgsave' };
  const held = await locksA.acquire(redisSpec, 'run-a');
  t.match(held?.description, /^SET upkeep:lock:bgsave NX PX 1000 on cache, renewed every 0\.3+s$/);
  t.equal(await locksB.acquire(redisSpec, 'run-b'), null, 'the other replica cannot take it');
  t.equal(await locksA.acquire(redisSpec, 'run-c'), null, 'nor can this process twice');
  t.equal(await locksB.holder(redisSpec), `run run-a on ${hostname()} (pid ${process.pid})`, 'the holder is named');
  const ttl = await client.pttl(redisLockKey('bgsave'));
  t.ok(ttl > 0 && ttl <= 1000, 'the key expires by itself');
  await new Promise((resolve) => setTimeout(resolve, 2500));
  t.equal(redisLockHolder(await client.get(redisLockKey('bgsave'))), `run run-a on ${hostname()} (pid ${process.pid})`, 'renewed while held: still there past two TTLs');
  // Simulate our lock expiring and another replica taking it: our release must not delete theirs.
  await client.set(redisLockKey('bgsave'), 'someone-else');
  await held?.release();
  t.equal(await client.get(redisLockKey('bgsave')), 'someone-else');
  t.equal(await locksB.holder(redisSpec), null, 'a value upkeep did not write names no holder');

  // A crashed owner: its key, with the short TTL, and nobody renewing it.
  await client.set(redisLockKey('bgsave'), `run-dead other-host 4242 ${'0'.repeat(36)}`, 'PX', 1000);
  t.equal(await locksB.acquire(redisSpec, 'run-b'), null);
  t.equal(await locksB.holder(redisSpec), 'run run-dead on other-host (pid 4242)');
  const again = await waitFor('the dead owner\'s lock to expire', async () => {
    const lock = await locksB.acquire(redisSpec, 'run-b');
    if (!lock) throw new Error('still held');
    return lock;
  }, 10_000, 100);
  await again.release();
  await again.release();
  t.equal(await client.exists(redisLockKey('bgsave')), 0);

  const pgSpec: LockSpec = { kind: 'postgres', target: 'main', database: 'postgres', key: 'vacuum:public.t' };
  const pgHeld = await locksA.acquire(pgSpec, 'run-a');
  t.match(pgHeld?.description, /^pg_advisory_lock\(-?\d+\) on main\/postgres for vacuum:public.t$/);
  t.equal(await locksB.acquire(pgSpec, 'run-b'), null);
  await pgHeld?.release();
  const pgAgain = await locksB.acquire(pgSpec, 'run-b');
  t.ok(pgAgain, 'released for the other replica');
  await pgAgain?.release();
  await t.rejects(locksA.acquire({ kind: 'postgres', target: 'main', database: 'missing', key: 'x' }, 'run-a'));
  t.ok(await locksA.acquire({ kind: 'postgres', target: 'main', database: 'postgres', key: 'x' }, 'run-a'), 'a failed acquire frees the local lock');
  t.equal(lockName('r', { kind: 'redis', target: 'cache', key: 'k' }), 'r redis:cache:k');
});

t.test('an alert refused outside the window runs when re-delivered inside it', async (t) => {
  let clock = Date.parse('2024-03-05T01:00:00Z');
  const config = testConfig({ state: { dir: await tempDir(t) }, remediation: { windows: [{ name: 'nightly', cron: '0 2 * * *', durationMinutes: 60, timezone: 'UTC' }] } });
  const engine = await Engine.create({ config, log: bufferLogger().log, actions: [testAction({ risk: 'disruptive' })], now: () => clock });
  t.teardown(() => engine.close());
  const alert = { fingerprint: 'f1', startsAt: '2024-03-05T00:55:00Z', alertname: 'A', labels: { alertname: 'A' } };
  const request = { remediation: 'test.action', params: { n: 1 }, trigger: 'alert' as const, alert, allowRisk: 'disruptive' as const };
  const outside = await engine.submit(request).done;
  t.equal(outside.skipCode, 'window');
  clock = Date.parse('2024-03-05T02:30:00Z');
  const inside = await engine.submit(request).done;
  t.equal(inside.status, 'success', 'not a duplicate: the refusal did not use up the alert');
  t.equal((await engine.submit(request).done).status, 'duplicate', 'the run that happened does');
});

t.test('a resolved alert cancels a run still claiming its alert, and gives the claim back', async (t) => {
  const engine = await engineWith(t, [testAction()]);
  const alert = { fingerprint: 'f-resolved', startsAt: '2024-03-05T00:55:00Z', alertname: 'A', labels: { alertname: 'A' } };
  const request = { remediation: 'test.action', params: { n: 1 }, trigger: 'alert' as const, alert };
  const submitted = engine.submit(request);
  const cancelled = engine.cancelQueued('f-resolved', 'alert resolved before the run started');
  t.same(cancelled.map((run) => [run.id, run.status]), [[submitted.runId, 'cancelled']]);
  t.same(engine.cancelQueued('f-resolved', 'again'), [], 'cancelled once');
  t.equal(await submitted.journalled, 'cancelled');
  t.match(await submitted.done, { status: 'cancelled', reason: 'alert resolved before the run started' });
  t.equal((await engine.get(submitted.runId))?.status, 'cancelled');
  t.equal((await engine.submit(request).done).status, 'success', 'the claim was given back: the re-delivery runs');
});

t.test('a run whose queued line cannot be written is not acknowledged, never starts, and gives its alert back', async (t) => {
  const stateDir = await tempDir(t);
  let runs = 0;
  const engine = await engineWith(t, [testAction({ run: async () => { runs += 1; } })], {}, stateDir);
  // The journal's directory is a file: the run's first line cannot be written (as on a full disk).
  await rm(join(stateDir, 'journal'), { recursive: true, force: true });
  await writeFile(join(stateDir, 'journal'), '');
  const alert = { fingerprint: 'f-unjournalled', startsAt: '2024-03-05T00:55:00Z', alertname: 'A', labels: { alertname: 'A' } };
  const submitted = engine.submit({ remediation: 'test.action', params: { n: 1 }, trigger: 'alert', alert });
  await t.rejects(submitted.journalled, /EEXIST|ENOTDIR/);
  t.match(await submitted.done, { status: 'cancelled', reason: /^the run could not be journalled: / });
  await rm(join(stateDir, 'journal'));
  const again = engine.submit({ remediation: 'test.action', params: { n: 1 }, trigger: 'alert', alert });
  t.equal(await again.journalled, 'queued', 'the alert was given back: its re-delivery is claimed');
  t.equal((await again.done).status, 'success');
  t.equal(runs, 1, 'only the acknowledged run ran');
});

t.test('an alert that cannot be claimed is not acknowledged and runs nothing', async (t) => {
  const stateDir = await tempDir(t);
  const engine = await engineWith(t, [testAction()], {}, stateDir);
  // The guards' directory is a file: the claim cannot be written.
  await writeFile(join(stateDir, 'guards'), '');
  const alert = { fingerprint: 'f-unclaimable', startsAt: '2024-03-05T00:55:00Z', alertname: 'A', labels: { alertname: 'A' } };
  const submitted = engine.submit({ remediation: 'test.action', params: { n: 1 }, trigger: 'alert', alert });
  await t.rejects(submitted.journalled, /EEXIST|ENOTDIR/);
  t.match(await submitted.done, { status: 'cancelled', reason: /^the alert could not be claimed: / });
  t.equal(await engine.get(submitted.runId), undefined, 'nothing was journalled');
  await rm(join(stateDir, 'guards'));
  const again = engine.submit({ remediation: 'test.action', params: { n: 1 }, trigger: 'alert', alert });
  t.equal(await again.journalled, 'queued', 'once the disk is back, the re-delivery is claimed');
  t.equal((await again.done).status, 'success', 'and runs: the failed claim was not kept as a claim of a run that never started');
});
