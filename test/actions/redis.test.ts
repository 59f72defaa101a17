import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { z } from 'zod';
import { waitFor } from '../fixtures/ports.js';
import { fillKeys, startRedis } from '../fixtures/redis.js';
import { redis as redisCollector } from '../../src/collectors/redis.js';
import { bgsave, completed, type BgsaveOutput } from '../../src/actions/redis-bgsave.js';
import type { CheckResult, RunOutput } from '../../src/actions/contract.js';
import { memoryPurge } from '../../src/actions/redis-memory-purge.js';
import { readPersistence } from '../../src/systems/redis/state.js';
import { buildApp } from '../../src/server.js';
import { ValidationError } from '../../src/errors.js';
import { buildContext, perform, testConfig } from './context.js';

/** A run's output that saw no save complete: LASTSAVE where the check left it. */
function noSave(before: CheckResult): RunOutput<BgsaveOutput> {
  const observed = z.object({ runId: z.string(), lastSave: z.number() }).parse(before.observed);
  return { detail: { start: 'started', runId: observed.runId, lastSaveBefore: observed.lastSave, lastSave: observed.lastSave, status: 'err' } };
}

t.test('when the save run() waits for has completed: LASTSAVE passed, or else rdb_saves (counted as saves start) and the status say so', (t) => {
  const at = (lastSave: number, rdbSaves: number | null, bgsaveInProgress = false, lastBgsaveStatus = 'ok') => ({ runId: 'r', lastSave, rdbSaves, bgsaveInProgress, aofRewriteInProgress: false, lastBgsaveStatus });
  t.equal(completed(at(100, 4), at(101, 5)), true, 'LASTSAVE passed');
  t.equal(completed(at(100, 4), at(100, 5)), true, 'started after, ended well, in the same second');
  t.equal(completed(at(100, 4, true), at(100, 4)), true, 'the save running before (joined) ended well');
  t.equal(completed(at(100, 4), at(100, 4)), false, 'none started since');
  t.equal(completed(at(100, 4), at(100, 5, true)), false, 'still running');
  t.equal(completed(at(100, 4), at(100, 5, false, 'err')), false, 'it failed');
  t.equal(completed(at(100, null), at(100, null)), false, 'before Redis 7 only LASTSAVE tells');
  t.end();
});

t.test('redis.bgsave', async (t) => {
  const server = await startRedis();
  t.teardown(() => server.destroy());
  const client = server.client();
  t.teardown(() => client.disconnect());
  const state = await mkdtemp(join(tmpdir(), 'upkeep-redis-state-'));
  t.teardown(() => rm(state, { recursive: true, force: true }));
  const context = buildContext({ state: { dir: state }, targets: { redis: [{ name: 'cache', url: server.url }] } });
  t.teardown(() => context.close());
  await client.set('some', 'data');

  t.test('LASTSAVE advances and verify says so', async (t) => {
    const before = Number(await client.lastsave());
    const result = await perform(bgsave, { target: 'cache' }, context);
    const after = Number(await client.lastsave());
    t.ok(after > before, `LASTSAVE ${before} -> ${after}`);
    t.equal(result.output.detail.start, 'started');
    t.equal(result.output.detail.lastSave, after);
    t.equal(result.verification.ok, true);
    t.match(result.verification.detail, /^LASTSAVE advanced from \d+ to \d+, rdb_last_bgsave_status:ok, same run_id$/);
    t.same(result.plan.map((step) => step.detail.split(' ')[0]), ['BGSAVE', 'INFO']);
  });

  t.test('a save counted in rdb_saves is a save even when LASTSAVE shows the same second', async (t) => {
    // A CI run saw a completed save (status ok) whose LASTSAVE never passed the one before it, and
    // the run failed; LASTSAVE has one-second resolution, the save count has none.
    const state = await readPersistence(await context.connections.redis('cache'));
    t.ok(state.rdbSaves !== null && state.rdbSaves > 0, `Redis 7 counts its saves (rdb_saves ${state.rdbSaves})`);
    const saves = state.rdbSaves ?? 0;
    const check: CheckResult = { proceed: true, reason: '', observed: { runId: state.runId, lastSave: state.lastSave, rdbSaves: saves - 1 } };
    const output: RunOutput<BgsaveOutput> = { detail: { start: 'started', runId: state.runId, lastSaveBefore: state.lastSave, lastSave: state.lastSave, status: 'ok', saves } };
    const verification = await bgsave.verify({ target: 'cache' }, check, output, context);
    t.equal(verification.ok, true, verification.detail);
    t.equal(verification.detail, `rdb_saves went from ${saves - 1} to ${saves} (LASTSAVE ${state.lastSave}, in the same second), rdb_last_bgsave_status:ok, same run_id`);
    const stale = await bgsave.verify({ target: 'cache' }, { ...check, observed: { ...check.observed, rdbSaves: saves } }, output, context);
    t.equal(stale.ok, false, 'no save since the check: not verified');
  });

  t.test('upkeep_redis_rdb_last_save_timestamp_seconds follows on the next scrape', async (t) => {
    const app = await buildApp({ config: context.config, log: context.log, collectors: [redisCollector] });
    t.teardown(() => app.fastify.close());
    const scrape = async () => {
      const body = (await app.fastify.inject({ method: 'GET', url: '/metrics' })).body;
      return Number(/^upkeep_redis_rdb_last_save_timestamp_seconds\{target="cache"\} (\S+)$/m.exec(body)?.[1]);
    };
    const before = await scrape();
    t.equal(before, Number(await client.lastsave()));
    const result = await perform(bgsave, { target: 'cache' }, context);
    const after = await scrape();
    t.ok(after > before, `metric ${before} -> ${after}`);
    t.equal(after, result.output.detail.lastSave);
  });

  t.test('a save already in progress is joined, not failed', async (t) => {
    // A big enough dataset that the save we start by hand is still running when the action asks.
    await fillKeys(client, 'fill:', 200_000, { value: 'x'.repeat(100) });
    await client.config('SET', 'rdbcompression', 'no');
    const before = await readPersistence(client);
    await new Promise((resolve) => setTimeout(resolve, 1100)); // a new second, so the hand-made save advances LASTSAVE
    await client.bgsave();
    const result = await perform(bgsave, { target: 'cache' }, context);
    t.equal(result.output.detail.start, 'joined');
    t.ok(Number(result.output.detail.lastSave) > before.lastSave);
    t.equal(result.verification.ok, true);
    await client.flushdb();
  });

  t.test('a save that fails is reported with the server status', async (t) => {
    const broken = await startRedis();
    t.teardown(() => broken.destroy());
    const brokenContext = buildContext({ targets: { redis: [{ name: 'cache', url: broken.url }] } });
    t.teardown(() => brokenContext.close());
    await rm(broken.dir, { recursive: true }); // the fork cannot create its temp file any more
    const params = await bgsave.resolve({ target: 'cache' }, brokenContext);
    const before = await bgsave.check(params, brokenContext);
    await t.rejects(bgsave.run(params, { target: 'cache' }, brokenContext), /BGSAVE did not complete: .*rdb_last_bgsave_status:err/);
    const verification = await bgsave.verify(params, before, noSave(before), brokenContext);
    t.equal(verification.ok, false);
    t.match(verification.detail, /rdb_last_bgsave_status:err/);
  });

  t.test('a Redis restarted mid-save (killed, started again on the same port and dir) fails the run: a new run_id is no save', async (t) => {
    const restarting = await startRedis();
    t.teardown(() => restarting.destroy());
    const probe = restarting.client();
    t.teardown(() => probe.disconnect());
    const restartContext = buildContext({ targets: { redis: [{ name: 'cache', url: restarting.url }] } });
    t.teardown(() => restartContext.close());
    // Three keys a second each: the forked save lasts three seconds, long enough to kill its server under it.
    await probe.mset('a', '1', 'b', '2', 'c', '3');
    await probe.config('SET', 'rdb-key-save-delay', '1000000');
    const params = await bgsave.resolve({ target: 'cache' }, restartContext);
    const before = await bgsave.check(params, restartContext);
    const running = bgsave.run(params, { target: 'cache' }, restartContext);
    running.catch(() => undefined);
    await waitFor('the BGSAVE to be in progress', async () => { if (!(await readPersistence(probe)).bgsaveInProgress) throw new Error('not yet'); }, 10_000, 20);
    probe.disconnect();
    await restarting.stop();
    await restarting.start();
    await t.rejects(running, { message: new RegExp(`^Redis restarted during the BGSAVE \\(run_id ${String(before.observed?.runId)} is now \\w{40}\\): its LASTSAVE \\d+ is its start-up, not a save; the BGSAVE did not complete$`) });

    // A restart between the check and the verify: LASTSAVE moved (to the start-up), and still it is a failure.
    const checked = await bgsave.check(params, restartContext);
    await restarting.stop();
    await restarting.start();
    const verification = await bgsave.verify(params, checked, noSave(checked), restartContext);
    t.equal(verification.ok, false);
    t.match(verification.detail, /^Redis restarted since the check \(run_id \w{40} is now \w{40}\): its LASTSAVE \d+ is its start-up, not a save; the BGSAVE did not complete$/);
    t.not(verification.observed?.runId, checked.observed?.runId);

    // Killed for good mid-save: the run waits a few seconds for it to come back, then fails.
    const again = restarting.client();
    t.teardown(() => again.disconnect());
    await again.mset('a', '1', 'b', '2', 'c', '3');
    await again.config('SET', 'rdb-key-save-delay', '1000000');
    const lost = bgsave.run(params, { target: 'cache' }, restartContext);
    lost.catch(() => undefined);
    await waitFor('the second BGSAVE to be in progress', async () => { if (!(await readPersistence(again)).bgsaveInProgress) throw new Error('not yet'); }, 10_000, 20);
    again.disconnect();
    await restarting.stop();
    await t.rejects(lost, { message: /^lost Redis during the BGSAVE: .+; still unreachable: .+$/ });
  });

  t.test('unknown target is a validation error', async (t) => {
    await t.rejects(bgsave.resolve({ target: 'nope' }, context), ValidationError);
    t.throws(() => bgsave.screen?.({ target: 'nope' }, context.config, 'alert'), new ValidationError('unknown redis target "nope" (not in targets.redis)'), 'refused before the run is queued');
    t.doesNotThrow(() => bgsave.screen?.({ target: 'cache' }, context.config, 'alert'));
    t.same(bgsave.lock({ target: 'cache' }, testConfig({})), { kind: 'redis', target: 'cache', key: 'redis.bgsave' });
    t.equal(bgsave.risk({ target: 'cache' }), 'safe');
  });

  t.test('the run stops at the deadline', async (t) => {
    const aborted = buildContext({ targets: { redis: [{ name: 'cache', url: server.url }] } });
    t.teardown(() => aborted.close());
    aborted.abort.abort();
    await t.rejects(bgsave.run({ target: 'cache' }, { target: 'cache' }, aborted));
  });
});

t.test('redis.memory_purge', async (t) => {
  const server = await startRedis();
  t.teardown(() => server.destroy());
  const context = buildContext({ targets: { redis: [{ name: 'cache', url: server.url }] } });
  t.teardown(() => context.close());

  t.test('purges, reports fragmentation before and after, and says why defrag is off', async (t) => {
    const result = await perform(memoryPurge, { target: 'cache' }, context);
    t.equal(result.before.proceed, true);
    t.equal(result.output.detail.purge, 'OK');
    t.type(result.output.detail.fragmentationRatioBefore, 'number');
    t.type(result.output.detail.fragmentationRatioAfter, 'number');
    // Debian's redis is built against the system jemalloc, which lacks the defrag hooks.
    const client = server.client();
    t.teardown(() => client.disconnect());
    const defragOn = (await client.config('GET', 'activedefrag'))[1] === 'yes';
    t.equal(result.output.detail.activeDefrag, defragOn ? 'enabled' : 'unsupported');
    if (!defragOn) {
      t.match(String(result.output.detail.activeDefragReason), /Active defragmentation cannot be enabled/);
      t.ok(context.logLines.some((line) => line.msg === 'active defragmentation is not available on this Redis build; MEMORY PURGE ran without it (the parameter activeDefrag: false skips the attempt and this line)' && line.level === 40));
    }
    t.equal(result.verification.ok, true);
    t.match(result.verification.detail, /mem_fragmentation_ratio .* -> /);
    t.same(result.plan.map((step) => step.detail), ['MEMORY PURGE', 'CONFIG GET activedefrag', 'CONFIG SET activedefrag yes (skipped when unsupported by the allocator)']);
  });

  t.test('without defrag, only MEMORY PURGE', async (t) => {
    const result = await perform(memoryPurge, { target: 'cache', activeDefrag: false }, context);
    t.equal(result.output.detail.activeDefrag, 'not-requested');
    t.same(result.plan, [{ kind: 'redis', detail: 'MEMORY PURGE' }]);
    t.equal(result.verification.ok, true);
  });

  t.test('skips when fragmentation is already below the threshold', async (t) => {
    const params = await memoryPurge.resolve(memoryPurge.params.parse({ target: 'cache', minFragmentationRatio: '1000', activeDefrag: 'true' }), context);
    const check = await memoryPurge.check(params, context);
    t.equal(check.proceed, false);
    t.match(check.reason, /below 1000/);
    const low = await memoryPurge.check({ ...params, minFragmentationRatio: 0.001 }, context);
    t.equal(low.proceed, true);
  });

  t.test('verify fails when defrag was reported on but is off', async (t) => {
    const verification = await memoryPurge.verify({ target: 'cache', activeDefrag: true }, { proceed: true, reason: '' }, { detail: {
      purge: 'OK', activeDefrag: 'enabled', fragmentationRatioBefore: 1.5, fragmentationRatioAfter: 1.4,
      allocatorFragmentationRatioBefore: 1.1, allocatorFragmentationRatioAfter: 1.1, rssBytesBefore: 1024, rssBytesAfter: 1024,
    } }, context);
    t.equal(verification.ok, false);
    await t.rejects(memoryPurge.resolve({ target: 'other', activeDefrag: true }, context), /unknown redis target "other"/);
    t.throws(() => memoryPurge.screen?.({ target: 'other', activeDefrag: true }, context.config, 'manual'), new ValidationError('unknown redis target "other" (not in targets.redis)'), 'refused before the run is queued');
    t.equal(memoryPurge.risk({ target: 'cache', activeDefrag: true }), 'safe');
    t.equal(memoryPurge.lock({ target: 'cache', activeDefrag: true }, testConfig({})).key, 'redis.memory_purge');
  });
});
