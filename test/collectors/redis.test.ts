import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Redis } from 'ioredis';
import t from 'tap';
import { freePort, waitFor } from '../fixtures/ports.js';
import { startRedis, type RedisServer } from '../fixtures/redis.js';
import { tlsFiles } from '../fixtures/tls.js';
import { byLabels, testApp, valueOf } from './helpers.js';

const run = promisify(execFile);
const PASSWORD = 'admin-secret';

function redisYaml(url: string, extra = ''): string {
  return `targets:\n  redis:\n    - name: cache\n      url: "${url}"\n${extra.split('\n').map((line) => `      ${line}`).join('\n')}\n`;
}

/** INFO as the test's own client sees it, field by field. */
async function info(client: Redis): Promise<Map<string, string>> {
  const text = await client.info();
  return new Map(text.split('\r\n').filter((line) => line.includes(':') && !line.startsWith('#')).map((line) => {
    const colon = line.indexOf(':');
    return [line.slice(0, colon), line.slice(colon + 1)];
  }));
}

/** The test's own SCAN count, through ioredis' scanStream rather than upkeep's loop. */
async function scanCount(client: Redis, pattern: string): Promise<number> {
  let count = 0;
  for await (const keys of client.scanStream({ match: pattern, count: 100 })) count += (keys as string[]).length;
  return count;
}

async function populate(server: RedisServer): Promise<Redis> {
  const client = server.client();
  client.on('error', () => undefined); // it reconnects by itself after the fault test's restart
  const pipeline = client.pipeline();
  for (let i = 0; i < 300; i += 1) pipeline.set(`celery-task-meta-${i}`, 'result');
  for (let i = 0; i < 50; i += 1) {
    if (i < 20) pipeline.set(`other:${i}`, 'v', 'EX', 3600);
    else pipeline.set(`other:${i}`, 'v');
  }
  await pipeline.exec();
  await client.select(2);
  for (let i = 0; i < 7; i += 1) await client.set(`db2:${i}`, 'v', 'EX', 600);
  await client.select(0);
  await client.get('celery-task-meta-1');
  await client.get('missing-1');
  await client.get('missing-2');
  await client.config('SET', 'maxmemory', '104857600');
  // Exactly three slow-log entries, then no more, so SLOWLOG LEN holds still while we compare.
  await client.config('SET', 'slowlog-log-slower-than', '0');
  await client.dbsize();
  await client.dbsize();
  await client.config('SET', 'slowlog-log-slower-than', '-1');
  return client;
}

t.test('redis collector', async (t) => {
  const server = await startRedis({ password: PASSWORD });
  t.teardown(() => server.destroy());
  const client = await populate(server);
  t.teardown(() => client.disconnect());

  t.test('ground truth: values equal INFO, SLOWLOG LEN and a SCAN count', async (t) => {
    const app = await testApp(t, redisYaml(server.url, 'keyPatterns: ["celery-task-meta-*", "other:*", "none-*"]'));
    await app.scrape();
    // The second scrape runs with upkeep's connections already open, as INFO just after sees them.
    const before = await info(client);
    const { status, samples } = await app.scrape();
    const truth = await info(client);
    t.equal(status, 200);
    t.equal(valueOf(samples, 'upkeep_redis_up', { target: 'cache' }), 1);
    const exact: [string, string][] = [
      ['upkeep_redis_memory_max_bytes', 'maxmemory'],
      ['upkeep_redis_rdb_last_save_timestamp_seconds', 'rdb_last_save_time'],
      ['upkeep_redis_rdb_changes_since_last_save', 'rdb_changes_since_last_save'],
      ['upkeep_redis_keyspace_hits_total', 'keyspace_hits'],
      ['upkeep_redis_keyspace_misses_total', 'keyspace_misses'],
    ];
    for (const [metric, field] of exact) t.equal(valueOf(samples, metric), Number(truth.get(field)), `${metric} = INFO ${field}`);
    t.equal(valueOf(samples, 'upkeep_redis_keyspace_hits_total'), 1);
    t.equal(valueOf(samples, 'upkeep_redis_keyspace_misses_total'), 2);
    t.equal(valueOf(samples, 'upkeep_redis_memory_max_bytes'), 104857600);
    t.equal(valueOf(samples, 'upkeep_redis_rdb_last_bgsave_success'), truth.get('rdb_last_bgsave_status') === 'ok' ? 1 : 0);
    // Memory moves with the server's own buffers between two INFO calls: usually equal, compared within 5% (15% for the RSS ratio).
    const usedMemory = valueOf(samples, 'upkeep_redis_memory_used_bytes') ?? 0;
    t.ok(Math.abs(usedMemory - Number(truth.get('used_memory'))) / usedMemory < 0.05, `used_memory ${usedMemory} ~ INFO ${truth.get('used_memory')}`);
    // The RSS ratio is Redis's own sample of its RSS, taken every 100 ms, over used memory: on a
    // 1 MB data set it moved 13.8 -> 9.6 between a scrape and the INFO after it (in a CI run on
    // 2026-12-02). So it must lie between INFO's readings just before and just after the scrape, 15% aside.
    const fragmentation = valueOf(samples, 'upkeep_redis_mem_fragmentation_ratio') ?? 0;
    const ratios = [before, truth].map((reading) => Number(reading.get('mem_fragmentation_ratio')));
    t.ok(fragmentation >= Math.min(...ratios) * 0.85 && fragmentation <= Math.max(...ratios) * 1.15, `fragmentation ${fragmentation} within INFO's ${ratios.join(' and ')} before and after`);
    t.same(byLabels(samples, 'upkeep_redis_keys', ['db']), new Map([['db0', 350], ['db2', 7]]));
    t.same(byLabels(samples, 'upkeep_redis_expiring_keys', ['db']), new Map([['db0', 20], ['db2', 7]]));
    t.equal(truth.get('db0'), 'keys=350,expires=20,avg_ttl=' + truth.get('db0')?.split('avg_ttl=')[1], 'INFO agrees on db0');
    t.equal(valueOf(samples, 'upkeep_redis_slowlog_length'), Number(await client.call('SLOWLOG', 'LEN')));
    t.equal(valueOf(samples, 'upkeep_redis_slowlog_length'), 3);
    const patterns = byLabels(samples, 'upkeep_redis_pattern_keys', ['pattern']);
    for (const pattern of ['celery-task-meta-*', 'other:*', 'none-*']) t.equal(patterns.get(pattern), await scanCount(client, pattern), `${pattern} equals a SCAN count`);
    t.same(patterns, new Map([['celery-task-meta-*', 300], ['other:*', 50], ['none-*', 0]]));
    t.ok(valueOf(samples, 'upkeep_collector_cache_age_seconds', { collector: 'redis', reading: 'pattern_keys' }) !== undefined, 'the counts come with their age');
  });

  t.test('pattern counts refresh in the background on their own interval', async (t) => {
    const app = await testApp(t, redisYaml(server.url, 'keyPatterns: ["fresh-*"]\nkeyPatternRefreshSeconds: 0.2'));
    t.equal(valueOf((await app.scrape()).samples, 'upkeep_redis_pattern_keys', { pattern: 'fresh-*' }), 0);
    await client.mset('fresh-1', 'a', 'fresh-2', 'b');
    await waitFor('new count', async () => {
      // Sleep past two intervals without scraping: the timer, not the scrape, refreshes.
      await new Promise((resolve) => setTimeout(resolve, 500));
      if (valueOf((await app.scrape()).samples, 'upkeep_redis_pattern_keys', { pattern: 'fresh-*' }) !== 2) throw new Error('not yet');
    }, 10_000, 0);
    t.equal(await scanCount(client, 'fresh-*'), 2);
  });

  t.test('an ACL user with only the commands upkeep needs', async (t) => {
    await client.call('ACL', 'SETUSER', 'upkeep', 'on', '>upkeep-pw', 'resetkeys', '-@all', '+info', '+slowlog|len', '+scan', '+client|setname');
    const app = await testApp(t, redisYaml(`redis://upkeep:upkeep-pw@127.0.0.1:${server.port}`, 'keyPatterns: ["celery-task-meta-*"]'));
    const { samples } = await app.scrape();
    t.equal(valueOf(samples, 'upkeep_redis_up', { target: 'cache' }), 1);
    t.equal(valueOf(samples, 'upkeep_redis_pattern_keys', { pattern: 'celery-task-meta-*' }), 300);
    t.equal(valueOf(samples, 'upkeep_redis_keys', { db: 'db0' }), 352);

    // A user that may not SCAN still gets everything else; the counts are missing and it is said once.
    await client.call('ACL', 'SETUSER', 'noscan', 'on', '>noscan-pw', 'resetkeys', '-@all', '+info', '+slowlog|len');
    const noScan = await testApp(t, redisYaml(`redis://noscan:noscan-pw@127.0.0.1:${server.port}`, 'keyPatterns: ["celery-task-meta-*"]'));
    await noScan.scrape();
    const partial = (await noScan.scrape()).samples;
    t.equal(valueOf(partial, 'upkeep_redis_up', { target: 'cache' }), 1);
    t.equal(valueOf(partial, 'upkeep_redis_keys', { db: 'db0' }), 352);
    t.equal(valueOf(partial, 'upkeep_redis_pattern_keys'), undefined, 'no count rather than a wrong one');
    // The counts' age grows from the first failure, so UpkeepCacheStale says the counts are missing.
    const firstAge = valueOf(partial, 'upkeep_collector_cache_age_seconds', { reading: 'pattern_keys' });
    t.ok(firstAge !== undefined && firstAge >= 0, `the counts' age is served (${String(firstAge)} s)`);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    t.ok(Number(valueOf((await noScan.scrape()).samples, 'upkeep_collector_cache_age_seconds', { reading: 'pattern_keys' })) >= Number(firstAge) + 1, 'and grows');
    const scanFailures = noScan.logs.filter((entry) => entry.msg === 'redis key-pattern SCAN failed; no counts yet, their age grows from now');
    t.equal(scanFailures.length, 1, 'logged once');
    t.match(scanFailures[0], { err: /NOPERM/ });

    const wrong = await testApp(t, redisYaml(`redis://upkeep:wrong@127.0.0.1:${server.port}`));
    const denied = await wrong.scrape();
    t.equal(denied.status, 200);
    t.equal(valueOf(denied.samples, 'upkeep_redis_up', { target: 'cache' }), 0);
    t.match(wrong.logs.find((entry) => entry.msg === 'collection failed'), { collector: 'redis', err: /WRONGPASS/ });
  });

  t.test('faults: Redis stopped mid-run, then back, without rebuilding the app', async (t) => {
    const app = await testApp(t, redisYaml(server.url, 'keyPatterns: ["celery-task-meta-*"]\nkeyPatternRefreshSeconds: 0.2'));
    t.equal(valueOf((await app.scrape()).samples, 'upkeep_redis_up', { target: 'cache' }), 1);
    await server.stop();
    const down = await app.scrape();
    t.equal(down.status, 200, '/metrics still answers');
    t.equal(valueOf(down.samples, 'upkeep_redis_up', { target: 'cache' }), 0);
    t.equal(valueOf(down.samples, 'upkeep_collector_up', { collector: 'redis', target: 'cache' }), 0);
    t.equal(valueOf(down.samples, 'upkeep_redis_keys', { db: 'db0' }), undefined, 'no stale series');
    await waitFor('background SCAN failure logged', async () => {
      if (!app.logs.some((entry) => entry.msg === 'redis key-pattern SCAN failed; serving the last counts')) throw new Error('not yet');
    });
    await server.start();
    const back = await app.scrape();
    t.equal(valueOf(back.samples, 'upkeep_redis_up', { target: 'cache' }), 1, 'up again on the next scrape');
    t.equal(valueOf(back.samples, 'upkeep_collector_up', { collector: 'redis', target: 'cache' }), 1);
    t.equal(valueOf(back.samples, 'upkeep_redis_keys', { db: 'db0' }), 0, 'the restarted server is empty (no persistence)');
  });
});

t.test('rediss:// with a private CA', async (t) => {
  const { dir, files: { ca, cert, key } } = await tlsFiles(t);
  const tlsPort = await freePort();
  // With its CA (for clients' certificates, none asked here) Redis sends its chain, CA included.
  const server = await startRedis({ args: ['--tls-port', String(tlsPort), '--tls-cert-file', cert, '--tls-key-file', key, '--tls-ca-cert-file', ca, '--tls-auth-clients', 'no'] });
  t.teardown(() => server.destroy());
  const url = `rediss://127.0.0.1:${tlsPort}`;

  const trusted = await testApp(t, redisYaml(url, `caFile: ${ca}`));
  t.equal(valueOf((await trusted.scrape()).samples, 'upkeep_redis_up', { target: 'cache' }), 1, 'TLS with the CA file');

  const untrusted = await testApp(t, redisYaml(url));
  t.equal(valueOf((await untrusted.scrape()).samples, 'upkeep_redis_up', { target: 'cache' }), 0, 'TLS is really on: a certificate from an unknown CA is refused');
  t.match(untrusted.logs.find((entry) => entry.msg === 'collection failed'), { err: /self[- ]signed/i });

  const missingCa = join(dir, 'later.pem');
  const late = await testApp(t, redisYaml(url, `caFile: ${missingCa}`));
  t.equal(valueOf((await late.scrape()).samples, 'upkeep_redis_up', { target: 'cache' }), 0, 'an unreadable CA file is a failed scrape');
  await run('cp', [ca, missingCa]);
  t.equal(valueOf((await late.scrape()).samples, 'upkeep_redis_up', { target: 'cache' }), 1, 'and is read again on the next one');
});
