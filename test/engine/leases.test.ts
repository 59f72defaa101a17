import { hostname } from 'node:os';
import pg from 'pg';
import t from 'tap';
import type { Action, LockSpec } from '../../src/actions/contract.js';
import { Engine } from '../../src/engine/engine.js';
import { idempotencyKey } from '../../src/engine/guards/idempotency.js';
import type { RunRecord } from '../../src/engine/journal.js';
import { RunLiveness } from '../../src/engine/leases.js';
import { lockName, Locks, runApplicationName } from '../../src/engine/locks.js';
import { FileStore } from '../../src/engine/state/file-store.js';
import { PostgresStore } from '../../src/engine/state/postgres-store.js';
import { newRunId } from '../../src/engine/state/run-id.js';
import { Connections } from '../../src/systems/connections.js';
import { bufferLogger } from '../fixtures/log.js';
import { waitFor } from '../fixtures/ports.js';
import { startPostgres } from '../fixtures/postgres.js';
import { tempDir, testConfig } from '../http/helpers.js';
import { flakyAction, gatedAction } from './gated-action.js';

/**
 * Leases on the PostgreSQL state store (a dead replica's runs are journalled interrupted by a live
 * one once its lease expires, and their alerts given back) and the Postgres lock that cuts off
 * what a dead run left working, on a real server. A dead replica is a (host, pid) that writes no
 * more: its rows are written here as it left them.
 */
const server = await startPostgres();
t.teardown(() => server.destroy());
const HOUR = 3_600_000;
const DEAD_HOST = 'replica-gone';
const DEAD_PID = 4242;

let schemas = 0;

/** A store on a fresh schema standing for the dead replica's own connection to it. */
async function sharedSchema(t: { teardown(fn: () => unknown): void }): Promise<{ schema: string; store: PostgresStore }> {
  schemas += 1;
  const schema = `leases_${schemas}`;
  const store = await PostgresStore.open({ url: server.url(), schema, timeoutMs: 10_000, retentionMs: 90 * 24 * HOUR, cooldownMs: 0, failureWindowMs: HOUR, log: bufferLogger().log });
  t.teardown(() => store.close());
  return { schema, store };
}

const alert = { fingerprint: 'f-lease', startsAt: '2024-03-05T00:55:00Z', alertname: 'A', labels: { alertname: 'A' } };

/** A run the dead replica left running, its alert claimed, as its rows stand in the store. */
async function deadReplicaRun(store: PostgresStore): Promise<RunRecord> {
  const nowMs = Date.now();
  const record: RunRecord = {
    id: newRunId(nowMs), remediation: 'test.action', trigger: 'alert', status: 'running', params: { n: 1 }, alert,
    queuedAt: new Date(nowMs).toISOString(), startedAt: new Date(nowMs).toISOString(), host: DEAD_HOST, pid: DEAD_PID,
  };
  await store.append(record).written;
  t.equal(await store.guards.claimAlert(idempotencyKey(alert, 'test.action'), record.id, nowMs), undefined, 'the dead replica had claimed the alert');
  return record;
}

async function setDeadLease(schema: string, expiresInMs: number): Promise<void> {
  await server.query(`insert into ${schema}.leases (host, pid, expires_ms) values ($1, $2, (extract(epoch from clock_timestamp()) * 1000)::bigint + $3)
    on conflict (host, pid) do update set expires_ms = excluded.expires_ms`, [DEAD_HOST, DEAD_PID, expiresInMs]);
}

t.test('a live replica journals a dead one\'s running run interrupted once its lease expires, and the re-delivered alert runs', async (t) => {
  const { schema, store } = await sharedSchema(t);
  const dead = await deadReplicaRun(store);
  await setDeadLease(schema, HOUR);
  const log = bufferLogger();
  const counting = flakyAction();
  const engine = await Engine.create({
    config: testConfig({ state: { dir: await tempDir(t), postgres: { url: server.url(), schema, leaseSeconds: 3 } }, remediation: { cooldownSeconds: 0 } }),
    log: log.log, actions: [counting],
  });
  t.teardown(() => engine.close());
  const request = { remediation: 'test.action', params: { n: 1 }, trigger: 'alert' as const, alert };

  const whileLeased = await engine.submit(request).done;
  t.equal(whileLeased.status, 'duplicate', 'while its owner\'s lease lives, the alert is the dead replica\'s');
  t.equal((await engine.get(dead.id))?.status, 'running', 'and its run stays running');
  t.same(await server.query(`select pid from ${schema}.leases where host = $1`, [hostname()]), [{ pid: process.pid }], 'this process holds a lease');

  await setDeadLease(schema, -1);
  const marked = await waitFor('the dead replica\'s run to be interrupted', async () => {
    const run = await engine.get(dead.id);
    if (run?.status !== 'interrupted') throw new Error(`still ${run?.status}`);
    return run;
  }, 20_000, 100);
  t.equal(marked.reason, `replica ${DEAD_HOST} (pid ${DEAD_PID}) stopped renewing its lease while the run was in progress; check the target before re-running`);
  t.same(await server.query(`select host from ${schema}.leases where host = $1`, [DEAD_HOST]), [], 'the expired lease is forgotten');
  t.same(log.lines().filter((line) => line.runId === dead.id).map(({ level, msg, host, pid, remediation }) => ({ level, msg, host, pid, remediation })), [
    { level: 40, msg: 'the replica running this run stopped renewing its lease; journalled as interrupted', host: DEAD_HOST, pid: DEAD_PID, remediation: 'test.action' },
  ]);

  const again = await engine.submit(request).done;
  t.equal(again.status, 'success', 'the re-delivered alert runs');
  t.equal(counting.executed, 1);
  t.equal((await engine.submit(request).done).status, 'duplicate', 'once');

  await engine.close();
  t.same(await server.query(`select host from ${schema}.leases`), [], 'a clean stop gives the lease up');
});

t.test('a run a peer journalled interrupted while this replica stalled keeps that record: its outcome is attached as late, counted, and its alert stays given back', async (t) => {
  const { schema, store: peer } = await sharedSchema(t);
  const log = bufferLogger();
  const { action, open } = gatedAction('test.action');
  const engine = await Engine.create({
    config: testConfig({ state: { dir: await tempDir(t), postgres: { url: server.url(), schema, leaseSeconds: 3 } }, remediation: { cooldownSeconds: 0 } }),
    log: log.log, actions: [action],
  });
  t.teardown(() => engine.close());
  const request = { remediation: 'test.action', params: { n: 1 }, trigger: 'alert' as const, alert };
  const first = engine.submit(request);
  await waitFor('the run to be running', async () => { if ((await engine.get(first.runId))?.status !== 'running') throw new Error('not yet'); }, 20_000, 50);

  // A peer's sweep, as PostgresLeases.interruptExpired and settleInterrupted do it once this replica's lease expired.
  const running = await engine.get(first.runId);
  const interrupted = { ...running, status: 'interrupted', reason: 'replica elsewhere (pid 1) stopped renewing its lease while the run was in progress; check the target before re-running' };
  await server.query(`update ${schema}.runs set status = 'interrupted', record = $2::jsonb where id = $1`, [first.runId, JSON.stringify(interrupted)]);
  await peer.guards.releaseAlert(idempotencyKey(alert, 'test.action'), first.runId);

  open();
  const outcome = await first.done;
  t.equal(outcome.status, 'success', 'this replica saw its run succeed');
  const stored = await engine.get(first.runId);
  t.same({ status: stored?.status, reason: stored?.reason, late: stored?.late },
    { status: 'interrupted', reason: interrupted.reason, late: { status: 'success', finishedAt: outcome.finishedAt, output: {}, verification: { ok: true, detail: 'fine' } } },
    'the journal keeps the peer\'s interrupted, with the outcome attached');
  t.same(log.lines().filter((line) => line.level === 40).map(({ msg, runId, remediation, status }) => ({ msg, runId, remediation, status })), [{
    msg: 'a peer journalled this run interrupted while this replica stalled past its lease; the journal keeps interrupted, with this outcome attached as late',
    runId: first.runId, remediation: 'test.action', status: 'success',
  }]);
  t.same((await engine.metrics.late.get()).values.map(({ labels, value }) => ({ labels, value })), [{ labels: { remediation: 'test.action' }, value: 1 }]);

  const again = await engine.submit(request).done;
  t.equal(again.status, 'success', 'the late success did not claim the alert again: a re-delivery runs');
  t.equal((await engine.submit(request).done).status, 'duplicate', 'and that run holds it');
});

t.test('a run a peer journalled interrupted before it acted goes no further when this replica comes back: queued, it does not start; checked, it does not execute', async (t) => {
  const { schema } = await sharedSchema(t);
  const log = bufferLogger();
  let enterCheck: () => void = () => undefined;
  const checking = new Promise<void>((resolve) => { enterCheck = resolve; });
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => { release = resolve; });
  const executed: number[] = [];
  const action: Action<{ n: number }> = {
    ...flakyAction(),
    lock: (params) => ({ kind: 'local', key: String(params.n) }),
    // The first run stalls between its check and its plan, as a replica stopped there would.
    check: async (params) => {
      if (params.n === 1) { enterCheck(); await released; }
      return { proceed: true, reason: 'go' };
    },
    run: async (params) => { executed.push(params.n); return { detail: {} }; },
  };
  const engine = await Engine.create({
    config: testConfig({ state: { dir: await tempDir(t), postgres: { url: server.url(), schema, leaseSeconds: 3 } }, remediation: { cooldownSeconds: 0, concurrency: 1 } }),
    log: log.log, actions: [action],
  });
  t.teardown(() => engine.close());
  const checked = engine.submit({ remediation: 'test.action', params: { n: 1 }, trigger: 'manual' });
  await checking;
  const waiting = engine.submit({ remediation: 'test.action', params: { n: 2 }, trigger: 'manual' });
  await waiting.journalled;
  t.equal((await engine.get(waiting.runId))?.status, 'queued', 'the second waits behind the first (concurrency 1)');

  // A peer's sweep marks both, as PostgresLeases.interruptExpired does once this replica's lease expired.
  for (const runId of [checked.runId, waiting.runId]) {
    await server.query(`update ${schema}.runs set status = 'interrupted', record = record || '{"status":"interrupted"}' where id = $1`, [runId]);
  }
  release();
  const reason = 'a peer journalled this run interrupted while this replica stalled past its lease; it went no further';
  t.same([(await checked.done).status, (await checked.done).reason, (await waiting.done).status, (await waiting.done).reason], ['cancelled', reason, 'cancelled', reason]);
  t.same(executed, [], 'neither executed');
  for (const runId of [checked.runId, waiting.runId]) {
    const stored = await engine.get(runId);
    t.same([stored?.status, stored?.late?.status, stored?.late?.reason], ['interrupted', 'cancelled', reason], 'the journal keeps interrupted, with the late cancellation');
  }
  t.same((await engine.metrics.late.get()).values.map(({ value }) => value), [2]);
});

t.test('a lease that cannot be renewed, checked or given up is logged, and the replica goes on', async (t) => {
  const { schema } = await sharedSchema(t);
  const log = bufferLogger();
  const engine = await Engine.create({
    config: testConfig({ state: { dir: await tempDir(t), postgres: { url: server.url(), schema, leaseSeconds: 3 } } }), log: log.log, actions: [flakyAction()],
  });
  const messages = () => log.lines().filter((line) => line.level === 50).map((line) => line.msg);
  // The runs table gone: the renewal works, the check for expired leases does not.
  await server.query(`alter table ${schema}.runs rename to runs_away`);
  await waitFor('the failed check', async () => { if (!messages().includes('cannot check for expired leases; tried again at the next renewal')) throw new Error('not yet'); }, 20_000, 100);
  await server.query(`alter table ${schema}.runs_away rename to runs`);
  // The leases table gone: neither renewing nor giving the lease up works.
  await server.query(`drop table ${schema}.leases`);
  await waitFor('the failed renewal', async () => { if (!messages().includes('cannot renew the lease; peers take this replica for dead once it expires')) throw new Error('not yet'); }, 20_000, 100);
  await engine.close();
  t.same([...new Set(messages())], [
    'cannot check for expired leases; tried again at the next renewal',
    'cannot renew the lease; peers take this replica for dead once it expires',
    'cannot give the lease up; it expires by itself',
  ]);
  t.match(log.lines().find((line) => line.msg === 'cannot give the lease up; it expires by itself'), { err: { message: /^state\.postgres: giving the lease up: relation ".*leases" does not exist$/ } });
});

t.test('a run whose owner never held a lease (an upkeep from before leases) is judged by its last write', async (t) => {
  const { store } = await sharedSchema(t);
  const dead = await deadReplicaRun(store);
  t.same(await store.leases.interruptExpired(new Date(), 60_000), [], 'written just now: not judged yet');
  const later = await PostgresStore.open({
    url: server.url(), schema: `leases_${schemas}`, timeoutMs: 10_000, retentionMs: 90 * 24 * HOUR, cooldownMs: 0, failureWindowMs: HOUR,
    log: bufferLogger().log, now: () => Date.now() + 120_000,
  });
  t.teardown(() => later.close());
  const marked = await later.leases.interruptExpired(new Date(), 60_000);
  t.same(marked.map((run) => [run.id, run.status]), [[dead.id, 'interrupted']], 'silent for longer than a lease: interrupted');
  t.same(await store.leases.interruptExpired(new Date(), 60_000), [], 'and only once');
});

/** A backend tagged as a run's, busy until terminated. */
async function taggedBackend(runId: string): Promise<{ pid: number; ended: Promise<unknown> }> {
  const client = new pg.Client({ connectionString: server.url(), application_name: runApplicationName(runId) });
  client.on('error', () => undefined);
  await client.connect();
  const [row] = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows;
  const ended = client.query('select pg_sleep(600)').catch((err: unknown) => err).finally(() => client.end().catch(() => undefined));
  return { pid: row?.pid ?? 0, ended };
}

t.test('a Postgres lock is not granted while a live run of it still has a backend working, and cuts off a dead run\'s first', async (t) => {
  const store = await FileStore.open({ dir: await tempDir(t), retentionMs: 90 * 24 * HOUR, cooldownMs: 0, failureWindowMs: HOUR, log: bufferLogger().log });
  t.teardown(() => store.close());
  const connections = new Connections(testConfig({ targets: { postgres: [{ name: 'main', url: server.url() }] } }));
  t.teardown(() => connections.close());
  const log = bufferLogger();
  const locks = new Locks(connections, { redisTtlMs: 30_000, liveness: new RunLiveness(store), log: log.log });
  const spec: LockSpec = { kind: 'postgres', target: 'main', database: 'postgres', key: 'vacuum:"public"."orders"' };
  const lockKey = lockName('postgres.vacuum', spec);
  const run = (changes: Partial<RunRecord>): RunRecord => ({
    id: newRunId(Date.now()), remediation: 'postgres.vacuum', trigger: 'manual', status: 'running', params: {}, queuedAt: new Date().toISOString(),
    host: hostname(), pid: process.pid, lockKey, ...changes,
  });

  // This process's run, still running, whose session no longer holds the lock.
  const live = run({});
  await store.append(live).written;
  const liveBackend = await taggedBackend(live.id);
  t.equal(await locks.acquire(spec, newRunId(Date.now()), lockKey), null, 'refused while the live run\'s backend works');
  t.equal(await locks.holder(spec), `run ${live.id} on ${hostname()} (pid ${process.pid}) is still working on it`);

  // Its owner died (a process of this host that is gone; the file store judges by the pid), its backend goes on.
  await store.append({ ...live, pid: 999_999_999 }).written;
  // Another remediation's backend is none of this lock's business.
  const other = run({ remediation: 'postgres.analyze', lockKey: 'postgres.analyze postgres:main/postgres:analyze' });
  await store.append({ ...other, status: 'failure' }).written;
  const otherBackend = await taggedBackend(other.id);
  const held = await locks.acquire(spec, newRunId(Date.now()), lockKey);
  t.ok(held, 'granted once the dead run\'s backend is gone');
  t.type(await liveBackend.ended, Error, 'the dead run\'s statement was ended');
  t.same(await server.query('select pid from pg_stat_activity where pid = $1', [liveBackend.pid]), [], 'and its backend is gone');
  t.same((await server.query('select pid from pg_stat_activity where pid = $1', [otherBackend.pid])).length, 1, 'the other remediation\'s backend was left alone');
  t.same(log.lines().map(({ level, msg, deadRunId, status, pids }) => ({ level, msg, deadRunId, status, pids })), [
    { level: 40, msg: 'terminated the backends of a run whose owner is gone before taking its lock', deadRunId: live.id, status: 'running', pids: [liveBackend.pid] },
  ]);
  t.equal(await locks.acquire(spec, newRunId(Date.now()), lockKey), null, 'held: the next run is refused');
  t.match(await locks.holder(spec), /^run [0-9a-f-]{36}, backend pid \d+$/, 'naming the run whose session holds it');
  await held?.release();
  await server.query('select pg_terminate_backend($1)', [otherBackend.pid]);
  await otherBackend.ended;
});

t.test('back after the state database was away longer than a lease, a replica gives its peers a lease\'s time to renew before it sweeps', async (t) => {
  // A helper's three replicas: the shared database down for 42 s (the lease 30 s), and the first
  // replica to reach it again journalled a live peer's VACUUM interrupted and gave its alert back.
  const { schema, store } = await sharedSchema(t);
  const peerRun = await deadReplicaRun(store);
  await setDeadLease(schema, HOUR);
  const log = bufferLogger();
  const engine = await Engine.create({
    config: testConfig({ state: { dir: await tempDir(t), postgres: { url: server.url(), schema, leaseSeconds: 3 } } }), log: log.log, actions: [flakyAction()],
  });
  t.teardown(() => engine.close());
  await setDeadLease(schema, 1000);
  await server.stop('fast');
  await new Promise((resolve) => setTimeout(resolve, 4500));
  await server.start();
  // The peer is alive: its first renewal after the outage comes within its renewal interval (a third of the lease).
  await waitFor('this replica to reach the database again', async () => {
    if (!log.lines().some((line) => line.level === 50 && line.msg === 'cannot renew the lease; peers take this replica for dead once it expires')) throw new Error('no renewal failed yet');
    await server.query(`select 1 from ${schema}.leases where host = $1 and pid = $2 and expires_ms > (extract(epoch from clock_timestamp()) * 1000)::bigint`, [hostname(), process.pid]).then((rows) => { if (rows.length === 0) throw new Error('not renewed yet'); });
  }, 20_000, 100);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  await setDeadLease(schema, HOUR);
  // Long enough for this replica to sweep again once a lease has passed since it came back.
  await new Promise((resolve) => setTimeout(resolve, 4000));
  t.equal((await engine.get(peerRun.id))?.status, 'running', 'the live peer\'s run is left to it');
  t.notOk(log.lines().some((line) => line.msg === 'the replica running this run stopped renewing its lease; journalled as interrupted'), 'nothing journalled interrupted');

  await setDeadLease(schema, -1);
  const marked = await waitFor('a peer that does not renew to be swept after all', async () => {
    const run = await engine.get(peerRun.id);
    if (run?.status !== 'interrupted') throw new Error(`still ${run?.status}`);
    return run;
  }, 20_000, 100);
  t.equal(marked.status, 'interrupted');
});
