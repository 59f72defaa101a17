import t from 'tap';
import { z } from 'zod';
import { runRecordSchema, type RunRecord } from '../../src/engine/journal.js';
import { waitFor } from '../fixtures/ports.js';
import { startRedis, type RedisServer } from '../fixtures/redis.js';
import { tempDir } from '../http/helpers.js';
import { serveInstalled, writeConfig, type Served } from './installed.js';

/**
 * Redis failing under a run, with the installed `upkeep serve`: a replica killed during
 * redis.expire_keys, Redis down for a while during it, and Redis killed during a BGSAVE. The
 * lock's TTL is configured short (remediation.redisLockTtlSeconds) so the test waits seconds; a
 * lock outlives its owner by at most its TTL, which the test reads from Redis itself (PTTL), so
 * the next run happens within a generous bound. The test never asserts how long anything took.
 */
const PATTERN = 'celery-task-meta-*';
const LOCK_KEY = `upkeep:lock:redis.expire_keys:${PATTERN}`;
const OUTAGE_MS = 5000;
const queuedReply = z.object({ runId: z.string() });

async function start(served: Served, remediation: string, params: Record<string, unknown>): Promise<string> {
  const response = await fetch(`${served.base}/remediations/${remediation}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ params }) });
  if (response.status !== 202) throw new Error(`${response.status}: ${await response.text()}`);
  return queuedReply.parse(await response.json()).runId;
}

async function finished(served: Served, runId: string): Promise<RunRecord> {
  return waitFor(`run ${runId} to finish`, async () => {
    const record = runRecordSchema.parse(await (await fetch(`${served.base}/runs/${runId}`)).json());
    if (record.status === 'queued' || record.status === 'running') throw new Error(`still ${record.status}`);
    return record;
  }, 180_000, 200);
}

/** Keys the DEBUG POPULATE way: `celery-task-meta-:N`, many enough that a run in batches of 10 takes a while. */
async function populate(redis: RedisServer, keys: number): Promise<void> {
  const client = redis.client();
  try {
    await client.call('DEBUG', 'POPULATE', String(keys), 'celery-task-meta-');
  } finally {
    client.disconnect();
  }
}

async function redisQuery<T>(redis: RedisServer, work: (client: ReturnType<RedisServer['client']>) => Promise<T>): Promise<T> {
  const client = redis.client();
  client.on('error', () => undefined);
  try {
    return await work(client);
  } finally {
    client.disconnect();
  }
}

/** Manual runs of the same lock, one after another, until one is not skipped for the lock: what they were, in order. */
async function runUntilNotLocked(served: Served, params: Record<string, unknown>): Promise<RunRecord[]> {
  const runs: RunRecord[] = [];
  await waitFor('a run not skipped for the lock', async () => {
    const run = await finished(served, await start(served, 'redis.expire_keys', params));
    runs.push(run);
    if (run.status === 'skipped' && run.skipCode === 'lock') throw new Error(run.reason);
  }, 120_000, 500);
  return runs;
}

t.test('kill -9 of the replica running redis.expire_keys: the next run, on another replica, starts once the lock\'s TTL runs out', async (t) => {
  const redis = await startRedis({ args: ['--enable-debug-command', 'yes'] });
  t.teardown(() => redis.destroy());
  await populate(redis, 300_000);
  const config = async () => (await writeConfig(t, {
    state: { dir: await tempDir(t) },
    remediation: { redisLockTtlSeconds: 3 },
    targets: { redis: [{ name: 'cache', url: redis.url, keyPatterns: [PATTERN] }] },
    collectors: { disabled: ['disks', 'docker'] },
  })).file;
  const [doomed, survivor] = await Promise.all([serveInstalled(t, await config()), serveInstalled(t, await config())]);
  if (!doomed || !survivor) throw new Error('two replicas');

  const deadRun = await start(doomed, 'redis.expire_keys', { target: 'cache', pattern: PATTERN, batchSize: 10 });
  const ttlMs = await waitFor('the run to hold its lock and be deleting', async () => {
    const [holder, pttl, left] = await redisQuery(redis, async (client) => [await client.get(LOCK_KEY), await client.pttl(LOCK_KEY), await client.dbsize()] as const);
    if (!holder?.startsWith(deadRun) || left >= 300_001) throw new Error('not deleting yet');
    return pttl;
  }, 120_000, 100);
  t.ok(ttlMs > 0 && ttlMs <= 3000, `the lock expires by itself within the configured 3 s TTL, not at the run's hour-long deadline (PTTL ${ttlMs} ms)`);
  const doomedPid = doomed.child.pid;
  doomed.child.kill('SIGKILL');
  await waitFor('the replica to die', async () => { if (doomed.alive()) throw new Error('alive'); });

  const runs = await runUntilNotLocked(survivor, { target: 'cache', pattern: PATTERN, batchSize: 10_000 });
  const last = runs.at(-1);
  t.equal(last?.status, 'success', last?.error ?? last?.reason ?? '');
  const locked = `locked: another run holds the lock on redis.expire_keys redis:cache:redis.expire_keys:${PATTERN}`;
  const skippedRuns = runs.slice(0, -1);
  t.ok(skippedRuns.length > 0, 'a run was skipped while the dead run\'s lock lived');
  t.equal(skippedRuns[0]?.reason, `${locked} (run ${deadRun} on ${skippedRuns[0]?.host ?? ''} (pid ${doomedPid}))`, 'the first skipped run names the dead holder');
  // The holder is read after the refused SET NX: when the TTL runs out in between, there is none to name.
  for (const skipped of skippedRuns.slice(1)) {
    t.ok([`${locked} (run ${deadRun} on ${skipped.host ?? ''} (pid ${doomedPid}))`, locked].includes(skipped.reason ?? ''), `a skipped run names the dead holder, or none once the lock expired: ${skipped.reason ?? ''}`);
  }
  t.equal(await redisQuery(redis, (client) => client.dbsize()), 0, 'every key is gone, and the lock with them');
  t.equal(await survivor.stop(), 0);
});

t.test('Redis down for a while during redis.expire_keys: the run fails saying how many keys it had deleted, and the next run starts once the lock\'s TTL runs out', async (t) => {
  // Kept on disk (AOF, every write), so the lock survives the outage as a crash would leave it.
  const redis = await startRedis({ args: ['--enable-debug-command', 'yes', '--appendonly', 'yes', '--appendfsync', 'always'] });
  t.teardown(() => redis.destroy());
  await populate(redis, 300_000);
  // DEBUG POPULATE writes nothing to the AOF: a rewrite puts the keys there.
  await redisQuery(redis, (client) => client.bgrewriteaof());
  await waitFor('the AOF rewrite', async () => {
    const info = await redisQuery(redis, (client) => client.info('persistence'));
    if (!/aof_rewrite_in_progress:0/.test(info) || !/aof_rewrite_scheduled:0/.test(info)) throw new Error('rewriting');
  }, 60_000, 100);
  // The outage (OUTAGE_MS) is shorter than the lock's TTL, so the lock outlives it, as an outage
  // shorter than the default 30 s TTL leaves it: the runs right after it are skipped for the lock.
  const { file } = await writeConfig(t, {
    remediation: { redisLockTtlSeconds: 9 },
    targets: { redis: [{ name: 'cache', url: redis.url, keyPatterns: [PATTERN] }] },
    collectors: { disabled: ['disks', 'docker'] },
  });
  const served = await serveInstalled(t, file);

  const cutOff = await start(served, 'redis.expire_keys', { target: 'cache', pattern: PATTERN, batchSize: 10 });
  await waitFor('the run to be deleting', async () => {
    if (await redisQuery(redis, (client) => client.dbsize()) >= 300_000) throw new Error('not deleting yet');
  }, 120_000, 100);
  await redis.stop();
  const failed = await finished(served, cutOff);
  t.equal(failed.status, 'failure');
  const done = z.object({ scanned: z.number(), matched: z.number(), unlinked: z.number(), batches: z.number() }).parse(failed.output);
  t.ok(done.unlinked > 0, `the journal says what it had deleted: ${JSON.stringify(done)}`);
  t.ok(failed.plan && failed.plan.length > 0, 'and what it planned');
  t.notMatch(failed.error ?? '', /maxRetriesPerRequest/, `the error says what happened, not which ioredis option gave up: ${failed.error ?? ''}`);
  await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS));
  await redis.start();
  const ttlMs = await redisQuery(redis, (client) => client.pttl(LOCK_KEY));
  t.ok(ttlMs <= 9000, `the failed run's lock (kept through the outage) expires within its 9 s TTL, not at the run's hour-long deadline (PTTL ${ttlMs} ms)`);
  // At most: an UNLINK whose reply the kill cut off did delete its keys without being counted.
  t.ok(await redisQuery(redis, (client) => client.dbsize()) <= 300_000 + 1 - done.unlinked, 'the keys it reported deleted stay deleted');

  const runs = await runUntilNotLocked(served, { target: 'cache', pattern: PATTERN, batchSize: 10_000 });
  t.equal(runs.at(-1)?.status, 'success', runs.at(-1)?.error ?? '');
  t.ok(runs.slice(0, -1).every((run) => run.reason?.includes(`(run ${cutOff} on `) === true), 'the runs skipped meanwhile name the failed run');
  t.equal(await redisQuery(redis, (client) => client.dbsize()), 0);
  t.equal(await served.stop(), 0);
});

t.test('kill -9 of Redis mid-BGSAVE, started again at once: the run is a failure, not a success', async (t) => {
  // Each key delays the save (µs), so the save is still going when Redis is killed.
  const redis = await startRedis({ args: ['--enable-debug-command', 'yes', '--rdb-key-save-delay', '200'] });
  t.teardown(() => redis.destroy());
  await populate(redis, 50_000);
  const { file } = await writeConfig(t, {
    targets: { redis: [{ name: 'cache', url: redis.url }] },
    collectors: { disabled: ['disks', 'docker'] },
  });
  const served = await serveInstalled(t, file);
  const runId = await start(served, 'redis.bgsave', { target: 'cache' });
  await waitFor('the BGSAVE to be in progress', async () => {
    const info = await redisQuery(redis, (client) => client.info('persistence'));
    if (!/rdb_bgsave_in_progress:1/.test(info)) throw new Error('not saving yet');
  }, 60_000, 50);
  await redis.stop();
  await redis.start();
  const run = await finished(served, runId);
  t.equal(run.status, 'failure');
  t.match(run.error, /Redis restarted during the BGSAVE|the BGSAVE did not complete/);
  t.equal(await served.stop(), 0);
});
