import { hostname } from 'node:os';
import t, { type Test } from 'tap';
import type { RunRecord } from '../../../src/engine/journal.js';
import { CLAIM_TTL_MS, TICK_TTL_MS } from '../../../src/engine/state/guard-file.js';
import { newRunId } from '../../../src/engine/state/run-id.js';
import { encodeCursor } from '../../../src/engine/state/run-key.js';
import { InvalidCursorError, type RunFilter } from '../../../src/engine/state/store.js';
import { bufferLogger } from '../../fixtures/log.js';
import { startPostgres } from '../../fixtures/postgres.js';
import { clock, finished, journalRuns, queued, T0 } from './journal-fixture.js';
import { fileKind, postgresKind, type Store } from './store-kinds.js';

/**
 * One suite, run against both state stores: what the engine relies on from either. The
 * PostgreSQL store's "replicas" are separate instances (own pools) on one schema; the file
 * store's are one instance, since it serves one replica.
 */
const server = await startPostgres();
t.teardown(() => server.destroy());

const HOUR = 3_600_000;
const REMEDIATIONS = ['postgres.vacuum', 'redis.bgsave', 'backup.pg_dump'];
const TRIGGERS = ['alert', 'manual', 'schedule', 'cli'] as const;

/** Every page, following `next`; listJson must give the same page as list. */
async function allIds(t: Test, store: Store, filter: RunFilter, limit: number): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const page: Awaited<ReturnType<Store['list']>> = await store.list(filter, cursor, limit);
    const json = await store.listJson(filter, cursor, limit);
    t.same({ runs: json.runs.map((text) => JSON.parse(text) as unknown), next: json.next }, page, 'listJson gives the page list gives');
    pages += 1;
    ids.push(...page.runs.map((run) => run.id));
    cursor = page.next;
  } while (cursor !== null);
  return { ids, pages };
}

for (const kind of [fileKind, postgresKind(server)]) {
  t.test(`${kind.name}: append, get and list with filters and cursor paging; a cursor it did not make is refused`, async (t) => {
    const time = clock(T0 + HOUR);
    const [store, peer] = await kind.replicas(t, 2, { now: time.now, log: bufferLogger().log });
    if (!store || !peer) throw new Error('no store');
    const finals: RunRecord[] = [];
    for (let n = 0; n < 60; n += 1) {
      const record = queued(T0 + n * 1000, { remediation: REMEDIATIONS[n % 3] ?? '', trigger: TRIGGERS[n % 4] ?? 'manual' });
      await store.append(record).written;
      const final = finished(record, n % 10 === 0 ? 'failure' : 'success', T0 + n * 1000 + 500);
      await store.append(final).durable;
      finals.push(final);
    }
    const newestFirst = finals.map((run) => run.id).reverse();
    const everything = await allIds(t, peer, {}, 7);
    t.same(everything.ids, newestFirst, 'every run once, newest first, seen by a peer');
    t.equal(everything.pages, 9);
    t.same((await allIds(t, peer, {}, 60)).pages, 1, 'a page holding exactly the rest has no next');
    t.same((await allIds(t, store, { status: 'failure' }, 4)).ids, finals.filter((run) => run.status === 'failure').map((run) => run.id).reverse());
    t.same((await allIds(t, store, { remediation: 'redis.bgsave', trigger: 'alert' }, 3)).ids,
      finals.filter((run) => run.remediation === 'redis.bgsave' && run.trigger === 'alert').map((run) => run.id).reverse());
    t.same(await peer.list({ remediation: 'nope' }, null, 10), { runs: [], next: null });
    t.same((await peer.list({ status: 'queued' }, null, 10)).runs, [], 'no run is left queued: its queued state is not its state');
    for (const run of [finals[0], finals[31], finals[59]]) t.same(await peer.get(run?.id ?? ''), run, `get ${run?.id}`);
    t.equal(await peer.get('nope'), undefined);
    t.equal(await peer.get(newRunId(T0 + 5)), undefined, 'a time-ordered id that was never written');
    const page = await peer.list({}, encodeCursor({ time: T0 + 10_000, id: finals[10]?.id ?? '' }), 3);
    t.same(page.runs.map((run) => run.id), [finals[9]?.id, finals[8]?.id, finals[7]?.id], 'a cursor pages from below its run');
    await t.rejects(peer.list({}, 'garbage!', 10), InvalidCursorError);
    await t.rejects(peer.listJson({}, Buffer.from('nope').toString('base64url'), 10), new InvalidCursorError('invalid cursor: pass back the "next" value of a previous GET /runs reply unchanged'));

    const inFlight = queued(T0 + 100_000);
    const running = { ...inFlight, status: 'running' as const, startedAt: inFlight.queuedAt };
    await Promise.all([store.append(inFlight).written, store.append(running).written, store.append(finished(inFlight, 'dry_run', T0 + 100_001)).durable]);
    t.equal((await peer.get(inFlight.id))?.status, 'dry_run', 'appends in flight for one run land in their order');
  });

  t.test(`${kind.name}: runs journalled after the clock stepped back an hour are listed once, in id order, and found`, async (t) => {
    const [store, peer] = await kind.replicas(t, 2, { now: clock(T0 + 3 * HOUR).now, log: bufferLogger().log });
    if (!store || !peer) throw new Error('no store');
    const finals = await journalRuns(store, [...Array.from({ length: 8 }, (_, n) => T0 + 2 * HOUR + n * 1000), ...Array.from({ length: 8 }, (_, n) => T0 + HOUR + n * 1000)]);
    t.same((await allIds(t, peer, {}, 5)).ids, finals.map((run) => run.id).sort().reverse(), 'every run once, newest id first');
    t.same(await Promise.all(finals.map(async (run) => (await peer.get(run.id))?.id)), finals.map((run) => run.id), 'each found by its id');
  });

  t.test(`${kind.name}: runs a dead process left unfinished are interrupted; a live process's are left alone`, async (t) => {
    const [store] = await kind.replicas(t, 1, { now: Date.now, log: bufferLogger().log });
    if (!store) throw new Error('no store');
    const dead = { host: hostname(), pid: 999_999_999 };
    const queuedDead = queued(T0, dead);
    const runningDead = { ...queued(T0 + 1, dead), status: 'running' as const };
    const runningLive = { ...queued(T0 + 2, { host: hostname(), pid: process.ppid }), status: 'running' as const };
    const done = finished(queued(T0 + 3, dead), 'success', T0 + 4);
    for (const record of [queuedDead, runningDead, runningLive, done]) await store.append(record).durable;
    const now = new Date(T0 + HOUR);
    const interrupted = await store.recoverInterrupted(now);
    t.same(interrupted.map((run) => [run.id, run.status, run.reason, run.finishedAt]).sort(), [
      [queuedDead.id, 'interrupted', 'upkeep stopped before the run started', now.toISOString()],
      [runningDead.id, 'interrupted', 'upkeep stopped while the run was in progress; check the target before re-running', now.toISOString()],
    ].sort());
    t.equal((await store.get(runningDead.id))?.status, 'interrupted');
    t.equal((await store.get(runningLive.id))?.status, 'running', 'the parent process is alive: not ours to interrupt');
    t.same(await store.recoverInterrupted(now), [], 'marked once');
  });

  t.test(`${kind.name}: an alert is claimed exactly once when 3 replicas race 100 claims each; only the holder releases`, async (t) => {
    const replicas = await kind.replicas(t, 3, { now: () => T0, log: bufferLogger().log });
    const keys = Array.from({ length: 10 }, (_, n) => JSON.stringify([`fingerprint-${n}`, '2024-05-01T00:00:00Z', 'postgres.vacuum']));
    const attempts = replicas.flatMap((replica, r) => Array.from({ length: 100 }, (_, n) => {
      const key = keys[n % keys.length] ?? '';
      const runId = `run-${r}-${n}`;
      return replica.guards.claimAlert(key, runId, T0).then((holder) => ({ key, runId, holder }));
    }));
    const results = await Promise.all(attempts);
    for (const key of keys) {
      const forKey = results.filter((result) => result.key === key);
      const winners = forKey.filter((result) => result.holder === undefined);
      t.equal(winners.length, 1, `one winner for ${key}`);
      t.same(new Set(forKey.filter((result) => result.holder !== undefined).map((result) => result.holder)), new Set([winners[0]?.runId]), 'every loser is told the winner');
    }
    const [a, b, c] = replicas;
    if (!a || !b || !c) throw new Error('three replicas');
    const key = keys[0] ?? '';
    const holder = results.find((result) => result.key === key && result.holder === undefined)?.runId ?? '';
    await b.guards.releaseAlert(key, 'not-the-holder');
    t.equal(await c.guards.claimAlert(key, 'late', T0), holder, 'a release by another run changes nothing');
    await a.guards.releaseAlert(key, holder);
    t.equal(await c.guards.claimAlert(key, 'after-release', T0), undefined, 'released by its holder: the next delivery claims it');
    t.equal(await a.guards.claimAlert(key, 'again', T0), 'after-release');
  });

  t.test(`${kind.name}: cooldowns, the circuit breaker and last successes are shared by every replica`, async (t) => {
    const [a, b, c] = await kind.replicas(t, 3, { now: () => T0, log: bufferLogger().log });
    if (!a || !b || !c) throw new Error('three replicas');
    t.equal(await b.guards.lastExecuted('r local:k'), undefined);
    await a.guards.recordOutcome({ remediation: 'r', runId: 'run-1', atMs: T0 - 10_000, executedLockKey: 'r local:k', result: 'failure' });
    await b.guards.recordOutcome({ remediation: 'r', runId: 'run-2', atMs: T0 - 5_000, executedLockKey: null, result: 'failure' });
    await c.guards.recordOutcome({ remediation: 'r', runId: 'run-2', atMs: T0 - 5_000, executedLockKey: null, result: 'failure' });
    await a.guards.recordOutcome({ remediation: 'r', runId: 'run-3', atMs: T0 - 20_000, executedLockKey: 'r local:k', result: null });
    await a.guards.recordOutcome({ remediation: 'q', runId: 'run-4', atMs: T0, executedLockKey: null, result: null });
    t.equal(await b.guards.lastExecuted('r local:k'), T0 - 10_000, 'the latest execution, from another replica');
    t.equal(await c.guards.recentFailures('r', T0 - HOUR), 2, 'failures from every replica, each once');
    t.equal(await c.guards.recentFailures('r', T0 - 7_000), 1, 'only those after sinceMs');
    await b.guards.recordOutcome({ remediation: 'r', runId: 'run-5', atMs: T0 - 1_000, executedLockKey: 'r local:k', result: 'success' });
    t.equal(await a.guards.recentFailures('r', T0 - HOUR), 0, 'a success anywhere closes the circuit everywhere');
    await c.guards.recordOutcome({ remediation: 'r', runId: 'run-6', atMs: T0, executedLockKey: null, result: 'failure' });
    t.equal(await a.guards.recentFailures('r', T0 - HOUR), 1, 'a failure after the success counts');
    t.same(await c.guards.lastSuccesses(), new Map([['r', T0 - 1_000]]));
    t.equal(await a.guards.lastExecuted('r local:k'), T0 - 1_000);
  });

  t.test(`${kind.name}: a schedule tick is claimed exactly once across 3 replicas`, async (t) => {
    const replicas = await kind.replicas(t, 3, { now: () => T0, log: bufferLogger().log });
    const ticks = Array.from({ length: 20 }, (_, n) => T0 + n * 10_000);
    const results = await Promise.all(replicas.flatMap((replica, r) => ticks.flatMap((tick) => ['nightly', 'hourly'].map(async (job) => ({
      job, tick, runId: `${job}-${tick}-${r}`, holder: await replica.guards.claimTick(job, tick, `${job}-${tick}-${r}`),
    })))));
    for (const job of ['nightly', 'hourly']) {
      for (const tick of ticks) {
        const forTick = results.filter((result) => result.job === job && result.tick === tick);
        const winners = forTick.filter((result) => result.holder === undefined);
        t.equal(winners.length, 1, `${job} at ${tick}: one winner`);
        t.ok(forTick.every((result) => result.holder === undefined || result.holder === winners[0]?.runId));
      }
    }
    t.equal(results.filter((result) => result.holder === undefined).length, 40, 'one run per job and tick');
  });

  t.test(`${kind.name}: claims and ticks are forgotten after their TTL; failures outside the window`, async (t) => {
    const time = clock(T0);
    const [store] = await kind.replicas(t, 1, { now: time.now, log: bufferLogger().log });
    if (!store) throw new Error('no store');
    await store.guards.claimAlert('alert', 'run-1', T0);
    await store.guards.claimTick('job', T0, 'run-2');
    await store.guards.recordOutcome({ remediation: 'r', runId: 'run-3', atMs: T0, executedLockKey: 'r local:k', result: 'failure' });
    time.set(T0 + TICK_TTL_MS + 1);
    await store.maintain();
    t.equal(await store.guards.claimTick('job', T0, 'run-4'), undefined, 'a tick a day past its nominal time is forgotten');
    t.equal(await store.guards.claimAlert('alert', 'run-5', T0 + TICK_TTL_MS + 1), 'run-1', 'an alert claim is kept for its TTL');
    t.equal(await store.guards.recentFailures('r', 0), 0, 'the failure left the window and was pruned');
    time.set(T0 + CLAIM_TTL_MS + 1);
    await store.maintain();
    t.equal(await store.guards.claimAlert('alert', 'run-6', T0 + CLAIM_TTL_MS + 1), undefined, 'past its TTL the claim is gone');
    t.equal(await store.guards.lastExecuted('r local:k'), undefined, 'past the cooldown and the claim TTL the execution is gone');
  });
}
