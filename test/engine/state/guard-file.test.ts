import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ClaimTable } from '../../../src/engine/state/claim-table.js';
import { FileStore } from '../../../src/engine/state/file-store.js';
import { CLAIM_TTL_MS, claimKey, GuardFile, TICK_TTL_MS, type GuardFileOptions } from '../../../src/engine/state/guard-file.js';
import { newRunId } from '../../../src/engine/state/run-id.js';
import { waitFor } from '../../fixtures/ports.js';
import { capturedLogger, tempDir } from '../../http/helpers.js';
import { clock, finished, queued, T0 } from './journal-fixture.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

async function openGuards(t: { teardown(fn: () => unknown): void }, dir: string, options: Partial<GuardFileOptions> = {}): Promise<GuardFile> {
  const guards = await GuardFile.open({ dir, now: () => T0, claimTtlMs: CLAIM_TTL_MS, claimLimit: 1000, cooldownMs: HOUR, failureWindowMs: HOUR, ...options });
  t.teardown(() => guards.close());
  return guards;
}

t.test('claims, cooldowns, failures and successes survive a restart; replaying twice changes nothing', async (t) => {
  const dir = await tempDir(t);
  const guards = await openGuards(t, dir);
  t.same(await readdir(dir), [], 'nothing is written before something happens');
  t.equal(await guards.claimAlert('k1', 'run-1', T0), undefined);
  t.equal(await guards.claimAlert('k1', 'run-2', T0), 'run-1', 'a second claim gets the holder');
  const [first, second] = await Promise.all([guards.claimAlert('k2', 'run-3', T0), guards.claimAlert('k2', 'run-4', T0)]);
  t.same([first, second], [undefined, 'run-3'], 'two claims in flight at once: one wins');
  await guards.releaseAlert('k2', 'run-4');
  t.equal(await guards.claimAlert('k2', 'run-5', T0), 'run-3', 'only the holder releases');
  await guards.releaseAlert('k2', 'run-3');
  await guards.recordOutcome({ remediation: 'r', runId: 'run-1', atMs: T0 - 10_000, executedLockKey: 'r local:k', result: 'failure' });
  await guards.recordOutcome({ remediation: 'r', runId: 'run-6', atMs: T0 - 5_000, executedLockKey: null, result: 'failure' });
  await guards.recordOutcome({ remediation: 's', runId: 'run-7', atMs: T0 - 1_000, executedLockKey: null, result: 'success' });
  await guards.recordOutcome({ remediation: 's', runId: 'run-8', atMs: T0, executedLockKey: null, result: null });
  await guards.close();

  const again = await openGuards(t, dir);
  t.equal(await again.claimAlert('k1', 'run-9', T0), 'run-1');
  t.equal(await again.claimAlert('k2', 'run-10', T0), undefined, 'the released claim stayed released');
  t.equal(await again.lastExecuted('r local:k'), T0 - 10_000);
  t.equal(await again.lastExecuted('other'), undefined);
  t.equal(await again.recentFailures('r', T0 - HOUR), 2);
  t.equal(await again.recentFailures('r', T0 - 7_000), 1, 'only failures after sinceMs');
  t.same(await again.lastSuccesses(), new Map([['s', T0 - 1_000]]));
  const files = await readdir(dir);
  t.same(files.filter((name) => name.startsWith('events-')).length, 1, 'the dead process\'s events went into the snapshot; only our new file is left');
  t.ok(files.includes('snapshot.jsonl'));
  await again.close();
  const third = await openGuards(t, dir);
  t.equal(await third.recentFailures('r', T0 - HOUR), 2, 'a failure replayed from both snapshot and events counts once');
});

t.test('a success closes the circuit; failures age out; claims expire after their TTL and beyond the limit', async (t) => {
  const dir = await tempDir(t);
  const time = clock();
  const guards = await openGuards(t, dir, { now: time.now, claimLimit: 3 });
  await guards.recordOutcome({ remediation: 'r', runId: 'a', atMs: T0 - 3_000, executedLockKey: null, result: 'failure' });
  await guards.recordOutcome({ remediation: 'r', runId: 'b', atMs: T0 - 2_000, executedLockKey: null, result: 'success' });
  await guards.recordOutcome({ remediation: 'r', runId: 'c', atMs: T0 - 1_000, executedLockKey: null, result: 'failure' });
  t.equal(await guards.recentFailures('r', T0 - HOUR), 1, 'the failure before the success does not count');

  for (let n = 1; n <= 4; n += 1) await guards.claimAlert(`k${n}`, `run-${n}`, T0 + n);
  t.equal(await guards.claimAlert('k1', 'again', T0), undefined, 'beyond the limit the oldest claim goes first');
  t.equal(await guards.claimAlert('k4', 'again', T0), 'run-4');
  time.set(T0 + CLAIM_TTL_MS + 10);
  await guards.compact();
  t.equal(await guards.claimAlert('k4', 'later', T0), undefined, 'a claim older than its TTL is gone after compaction');
  t.equal(await guards.recentFailures('r', 0), 0, 'failures outside the window are pruned');
  t.same(await guards.lastSuccesses(), new Map([['r', T0 - 2_000]]), 'the last success is kept');
});

t.test('events files of live processes are read and kept; those of dead ones are merged, torn lines skipped', async (t) => {
  const dir = await tempDir(t);
  const host = hostname().replace(/[^A-Za-z0-9.]/g, '_');
  const liveFile = `events-${host}-${process.ppid}-1-1.jsonl`;
  const deadFile = `events-${host}-999999999-1-1.jsonl`;
  await writeFile(join(dir, liveFile), `${JSON.stringify(['claim', claimKey('k'), 'run-live', T0])}\n["claim","being written`);
  await writeFile(join(dir, deadFile), `${JSON.stringify(['claim', claimKey('j'), 'run-dead', T0])}\n"not an event"\n["claim","torn`);
  const guards = await openGuards(t, dir);
  t.equal(await guards.claimAlert('k', 'mine', T0), 'run-live');
  t.equal(await guards.claimAlert('j', 'mine', T0), 'run-dead');
  t.same(guards.skipped, [{ file: join(dir, deadFile), lines: 2 }], 'a live writer\'s last half line is not an error');
  const files = await readdir(dir);
  t.ok(files.includes(liveFile), 'a live process still writes it');
  t.notOk(files.includes(deadFile), 'merged into the snapshot');
  t.match(await readFile(join(dir, 'snapshot.jsonl'), 'utf8'), /run-live[^]*run-dead|run-dead[^]*run-live/);
});

t.test('the file store: claims and cooldowns outlive the journal segments retention removes', async (t) => {
  const dir = await tempDir(t);
  const time = clock();
  const captured = capturedLogger('info');
  const options = { dir, retentionMs: 2 * DAY, cooldownMs: 10 * DAY, failureWindowMs: HOUR, log: captured.log, now: time.now, limits: { segmentRuns: 1, sealGraceMs: 0 } };
  const store = await FileStore.open(options);
  const old = finished(queued(T0), 'success', T0);
  await store.append(old).durable;
  t.equal(await store.guards.claimAlert('alert-1', old.id, T0), undefined);
  await store.guards.recordOutcome({ remediation: old.remediation, runId: old.id, atMs: T0, executedLockKey: 'lock', result: 'success' });
  time.set(T0 + 5 * DAY);
  for (let n = 0; n < 3; n += 1) await store.append(finished(queued(T0 + 5 * DAY + n), 'success', T0 + 5 * DAY + n)).durable;
  await store.maintain();
  t.equal(await store.get(old.id), undefined, 'the old run left with its segment');
  t.equal(await store.guards.claimAlert('alert-1', 'again', T0 + 5 * DAY), old.id, 'its claim did not');
  await store.close();

  const reopened = await FileStore.open(options);
  t.teardown(() => reopened.close());
  t.equal(await reopened.guards.claimAlert('alert-1', 'again', T0 + 5 * DAY), old.id, 'nor after a restart');
  t.equal(await reopened.guards.lastExecuted('lock'), T0);
  t.same(reopened.skipped, []);
  t.equal(captured.text(), '', 'nothing to log');
});

t.test('the file store: a clock far ahead of the newest run (a wrong date at boot) does not take the journal; retention counts from that run', async (t) => {
  const dir = await tempDir(t);
  // A year ahead; retention 90 days: by the clock alone every run would go.
  const time = clock(T0 + 365 * DAY);
  const store = await FileStore.open({ dir, retentionMs: 90 * DAY, cooldownMs: 0, failureWindowMs: HOUR, log: capturedLogger('info').log, now: time.now, limits: { segmentRuns: 1, sealGraceMs: 0 } });
  t.teardown(() => store.close());
  const runs = [T0, T0 + DAY, T0 + 100 * DAY, T0 + 100 * DAY + 1, T0 + 100 * DAY + 2].map((at) => finished(queued(at), 'success', at));
  for (const run of runs) await store.append(run).durable;
  await store.maintain();
  const kept = await Promise.all(runs.map(async (run) => (await store.get(run.id)) !== undefined));
  t.same(kept, [false, false, true, true, true], 'only the runs more than 90 days older than the newest run are removed');
});

t.test('maintenance runs on its own every maintenanceMs; when it fails, it is logged and tried again later', async (t) => {
  const dir = await tempDir(t);
  const captured = capturedLogger('info');
  const periodic = await FileStore.open({ dir, retentionMs: DAY, cooldownMs: 0, failureWindowMs: HOUR, log: captured.log, maintenanceMs: 20 });
  await periodic.guards.claimAlert('k', 'r', Date.now());
  await waitFor('a compaction to write the snapshot', async () => {
    if (!(await readdir(join(dir, 'guards'))).includes('snapshot.jsonl')) throw new Error('not yet');
  });
  await periodic.close();

  const store = await FileStore.open({ dir, retentionMs: DAY, cooldownMs: 0, failureWindowMs: HOUR, log: captured.log });
  t.teardown(() => store.close());
  await store.guards.claimAlert('k2', 'r2', Date.now());
  // The guards' directory turns into a file: the snapshot cannot be written.
  const guardsDir = join(dir, 'guards');
  await rm(guardsDir, { recursive: true });
  await writeFile(guardsDir, '');
  await t.resolves(store.maintain());
  t.match(captured.text(), /"level":50.*"msg":"state maintenance failed \(retention, rotation or compaction\); it is tried again within the hour"/);
});

t.test('the claim table: thousands of claims, deletes, growth, pruning, and ids that are not UUIDs', async (t) => {
  const table = new ClaimTable();
  const runIds = Array.from({ length: 5000 }, (_, n) => newRunId(T0 + n));
  runIds.forEach((runId, n) => table.add(claimKey(`alert ${n}`), runId, T0 + n));
  table.add(claimKey('alert 0'), 'someone else', T0);
  t.equal(table.size, 5000, 'a key is claimed once');
  t.equal(table.get(claimKey('alert 0')), runIds[0]);
  t.equal(table.get(claimKey('alert 4999')), runIds[4999], 'found after the table grew');
  t.equal(table.get(claimKey('never')), undefined);
  for (let n = 0; n < 5000; n += 2) table.delete(claimKey(`alert ${n}`));
  table.delete(claimKey('never'));
  t.equal(table.size, 2500);
  t.equal(table.get(claimKey('alert 2')), undefined);
  t.equal(table.get(claimKey('alert 3')), runIds[3], 'found past deleted slots');
  table.add(claimKey('legacy'), 'a-run-id-that-is-no-uuid', T0 + 10_000);
  t.equal(table.get(claimKey('legacy')), 'a-run-id-that-is-no-uuid');
  const listed = table.list();
  t.equal(listed.length, 2501);
  t.same(listed.slice(0, 2).map((claim) => claim.runId), [runIds[1], runIds[3]], 'oldest first');
  table.prune(T0 + 1000, 100);
  t.equal(table.size, 100, 'beyond the limit, the oldest go');
  t.equal(table.get(claimKey('legacy')), 'a-run-id-that-is-no-uuid', 'the newest stay');
  table.prune(T0 + 20_000, 100);
  t.equal(table.size, 0, 'all older than the horizon');
});

t.test('schedule tick claims: one per job and nominal time, kept across a restart and a compaction, forgotten a day later', async (t) => {
  const dir = await tempDir(t);
  const time = clock();
  const guards = await openGuards(t, dir, { now: time.now });
  const [first, second] = await Promise.all([guards.claimTick('nightly', T0, 'run-1'), guards.claimTick('nightly', T0, 'run-2')]);
  t.same([first, second], [undefined, 'run-1'], 'two claims in flight at once: one wins');
  t.equal(await guards.claimTick('nightly', T0 + 60_000, 'run-3'), undefined, 'the next tick is another claim');
  t.equal(await guards.claimTick('hourly', T0, 'run-4'), undefined, 'as is another job');
  await guards.close();
  const again = await openGuards(t, dir, { now: time.now });
  t.equal(await again.claimTick('nightly', T0, 'run-5'), 'run-1', 'after a restart');
  await again.compact();
  await again.close();
  const third = await openGuards(t, dir, { now: time.now });
  t.equal(await third.claimTick('hourly', T0, 'run-6'), 'run-4', 'from the snapshot');
  time.set(T0 + TICK_TTL_MS + 1);
  await third.compact();
  t.equal(await third.claimTick('hourly', T0, 'run-7'), undefined, 'a day past its nominal time it is forgotten');
});

t.test('a claim whose line cannot be written is taken back: once the disk is back, the next delivery claims the alert', async (t) => {
  const dir = await tempDir(t);
  const guards = await openGuards(t, dir);
  t.equal(await guards.claimAlert('before', 'run-0', T0), undefined);
  // The directory turns into a file: the next events file cannot be created.
  await guards.compact();
  await rm(dir, { recursive: true });
  await writeFile(dir, '');
  await t.rejects(guards.claimAlert('k', 'run-1', T0), { code: 'EEXIST' }, 'the claim fails (the webhook is not acknowledged)');
  await t.rejects(guards.claimTick('nightly', T0, 'run-2'), { code: 'EEXIST' });
  await rm(dir);
  await mkdir(dir);
  t.equal(await guards.claimAlert('k', 'run-3', T0), undefined, 'the re-delivery is claimed, not refused as a duplicate of a run that never started');
  t.equal(await guards.claimTick('nightly', T0, 'run-4'), undefined, 'so is the tick');
  t.equal(await guards.claimAlert('k', 'run-5', T0), 'run-3', 'and the new claim holds');
  await guards.close();
  const again = await openGuards(t, dir);
  t.equal(await again.claimAlert('k', 'run-6', T0), 'run-3', 'after a restart too');
  t.equal(await again.claimTick('nightly', T0, 'run-7'), 'run-4');
});
