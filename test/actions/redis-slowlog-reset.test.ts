import t from 'tap';
import { slowlogReset } from '../../src/actions/redis-slowlog-reset.js';
import { Engine } from '../../src/engine/engine.js';
import { Connections } from '../../src/systems/connections.js';
import { bufferLogger } from '../fixtures/log.js';
import { startRedis } from '../fixtures/redis.js';
import { tempDir, testConfig } from '../http/helpers.js';

t.test('redis.slowlog_reset against a real redis-server', async (t) => {
  const server = await startRedis();
  t.teardown(() => server.destroy());
  const client = server.client();
  t.teardown(() => client.disconnect());
  // Log every command for a moment, then nothing more, so the slow log holds a known backlog.
  await client.config('SET', 'slowlog-log-slower-than', '0');
  for (let i = 0; i < 5; i++) await client.set(`key:${i}`, 'x');
  await client.config('SET', 'slowlog-log-slower-than', '10000000');
  const backlog = Number(await client.slowlog('LEN'));
  t.ok(backlog >= 5, `the slow log holds ${backlog} entries`);

  const logger = bufferLogger();
  const config = testConfig({ state: { dir: await tempDir(t) }, targets: { redis: [{ name: 'cache', url: server.url }] } });
  const engine = await Engine.create({ config, log: logger.log });
  t.teardown(() => engine.close());
  const run = (params: Record<string, unknown>, dryRun = false) => engine.submit({ remediation: 'redis.slowlog_reset', params, trigger: 'manual', dryRun }).done;

  t.test('a dry run plans SLOWLOG RESET and leaves the log alone', async (t) => {
    const dry = await run({ target: 'cache' }, true);
    t.equal(dry.status, 'dry_run');
    t.same(dry.plan, [{ kind: 'redis', detail: 'SLOWLOG RESET' }]);
    t.same(dry.payload, { target: 'cache' });
    t.equal(Number(await client.slowlog('LEN')), backlog);
  });

  t.test('a run empties the slow log and verifies SLOWLOG LEN is 0', async (t) => {
    const done = await run({ target: 'cache' });
    t.equal(done.status, 'success', done.error ?? 'success');
    t.same(done.check, { proceed: true, reason: `the slow log holds ${backlog} entries`, observed: { entries: backlog } });
    t.same(done.output, { entriesBefore: backlog, reset: 'OK' });
    t.same(done.verification, { ok: true, detail: `SLOWLOG RESET OK; SLOWLOG LEN ${backlog} -> 0`, observed: { entries: 0 } });
    t.equal(Number(await client.slowlog('LEN')), 0);
  });

  t.test('with the log empty, the next run is skipped', async (t) => {
    const skipped = await run({ target: 'cache' });
    t.equal(skipped.status, 'skipped');
    t.equal(skipped.reason, 'condition cleared: the slow log is empty');
  });

  t.test('verify fails when entries are left', async (t) => {
    await client.config('SET', 'slowlog-log-slower-than', '0');
    await client.set('late', 'x');
    await client.config('SET', 'slowlog-log-slower-than', '10000000');
    const context = { config, log: logger.log, connections: new Connections(config), signal: new AbortController().signal, deadline: Date.now() + 60_000, trigger: 'manual' as const, now: Date.now };
    t.teardown(() => context.connections.close());
    const verification = await slowlogReset.verify({ target: 'cache' }, { proceed: true, reason: '' }, { detail: { entriesBefore: 3, reset: 'OK' } }, context);
    t.equal(verification.ok, false);
    t.match(verification.detail, /^SLOWLOG RESET OK; SLOWLOG LEN 3 -> [1-9]\d*$/);
  });

  t.test('an unknown target is rejected, and the risk is safe', async (t) => {
    const rejected = await run({ target: 'nope' });
    t.equal(rejected.status, 'rejected');
    t.equal(rejected.reason, 'unknown redis target "nope" (not in targets.redis)');
    t.throws(() => slowlogReset.screen?.({ target: 'nope' }, config, 'manual'), { message: 'unknown redis target "nope" (not in targets.redis)' }, 'by the screen, before the run is queued');
    t.equal(slowlogReset.risk({ target: 'cache' }), 'safe');
    t.same(slowlogReset.lock({ target: 'cache' }, config), { kind: 'redis', target: 'cache', key: 'redis.slowlog_reset' });
  });
});
