import { readFile } from 'node:fs/promises';
import type { Redis } from 'ioredis';
import t from 'tap';
import { healthReadings, replicaOffsets } from '../../src/collectors/redis-health.js';
import { parseInfo } from '../../src/systems/redis/info.js';
import { waitFor } from '../fixtures/ports.js';
import { startRedis } from '../fixtures/redis.js';
import { testApp, valueOf, type Sample } from './helpers.js';

const fixture = (name: string) => readFile(new URL(`../fixtures/${name}`, import.meta.url), 'utf8');
const values = (text: string) => Object.fromEntries(healthReadings(parseInfo(text), 'cache').map((reading) => [
  reading.family + (reading.labels.policy ? `{${reading.labels.policy}}` : ''),
  reading.value,
]));

t.test('INFO to metrics: a real 7.0 primary without replicas', async (t) => {
  t.same(values(await fixture('redis-info-7.0-ok.txt')), {
    upkeep_redis_connected_clients: 1,
    upkeep_redis_blocked_clients: 0,
    upkeep_redis_rejected_connections_total: 0,
    upkeep_redis_max_clients: 10000,
    upkeep_redis_evicted_keys_total: 0,
    upkeep_redis_expired_keys_total: 0,
    upkeep_redis_aof_enabled: 0,
    upkeep_redis_connected_replicas: 0,
    upkeep_redis_uptime_seconds: 2,
    upkeep_redis_aof_last_rewrite_success: 1,
    upkeep_redis_aof_last_write_success: 1,
    'upkeep_redis_maxmemory_policy_info{noeviction}': 1,
    upkeep_redis_replica: 0,
    upkeep_redis_replication_offset_lag_bytes: 0,
  });
});

t.test('INFO to metrics: failures, a replica with its link down, a primary with two replicas', (t) => {
  const failed = values('aof_enabled:1\r\naof_last_bgrewrite_status:err\r\naof_last_write_status:err\r\n');
  t.same(failed, { upkeep_redis_aof_enabled: 1, upkeep_redis_aof_last_rewrite_success: 0, upkeep_redis_aof_last_write_success: 0 }, 'only what INFO reports');
  t.same(values('role:slave\r\nmaster_link_status:down\r\nmaster_repl_offset:900\r\n'), { upkeep_redis_replica: 1, upkeep_redis_master_link_up: 0 }, 'no offset lag on a replica');
  const primary = 'role:master\r\nconnected_slaves:2\r\nslave0:ip=10.0.0.2,port=6379,state=online,offset=1000,lag=0\r\nslave1:ip=10.0.0.3,port=6379,state=online,offset=400,lag=1\r\nmaster_repl_offset:1200\r\n';
  t.same(values(primary), { upkeep_redis_connected_replicas: 2, upkeep_redis_replica: 0, upkeep_redis_replication_offset_lag_bytes: 800 }, 'the furthest-behind replica');
  t.same(values('role:master\r\nmaster_link_status:up\r\n'), { upkeep_redis_replica: 0 }, 'a primary has no link to report');
  t.same(replicaOffsets(parseInfo(primary).fields), [1000, 400]);
  t.same(replicaOffsets(parseInfo('slave0:ip=10.0.0.2,port=6379,state=wait_bgsave\r\nslaves:3\r\n').fields), [], 'a replica without an offset yet, and other fields, are skipped');
  t.end();
});

/** INFO as the test's own client sees it, field by field. */
async function info(client: Redis): Promise<ReadonlyMap<string, string>> {
  return parseInfo(await client.info()).fields;
}

t.test('a real primary and a real replica (replicaof): every metric equals INFO', async (t) => {
  const primary = await startRedis({ args: ['--appendonly', 'yes', '--maxclients', '20', '--maxmemory-policy', 'allkeys-lru'] });
  t.teardown(() => primary.destroy());
  const replica = await startRedis({ args: ['--replicaof', '127.0.0.1', String(primary.port)] });
  t.teardown(() => replica.destroy());
  const client = primary.client();
  t.teardown(() => client.disconnect());
  const replicaClient = replica.client();
  t.teardown(() => replicaClient.disconnect());
  await waitFor('replica in sync', async () => {
    if ((await info(replicaClient)).get('master_link_status') !== 'up') throw new Error('link not up yet');
  });

  // Keys that expire, keys evicted under a small maxmemory, a blocked client, rejected connections.
  for (let i = 0; i < 20; i += 1) await client.set(`short:${i}`, 'v', 'PX', 1);
  await new Promise((resolve) => setTimeout(resolve, 20));
  for (let i = 0; i < 20; i += 1) await client.get(`short:${i}`);
  const used = Number((await info(client)).get('used_memory'));
  await client.config('SET', 'maxmemory', String(used + 512 * 1024));
  const pipeline = client.pipeline();
  for (let i = 0; i < 2000; i += 1) pipeline.set(`big:${i}`, 'x'.repeat(1024));
  await pipeline.exec();
  const blocked = primary.client();
  t.teardown(() => blocked.disconnect());
  void blocked.blpop('never-pushed', 0).catch(() => undefined);
  await waitFor('blocked client', async () => {
    if ((await info(client)).get('blocked_clients') !== '1') throw new Error('not blocked yet');
  });
  await client.config('SET', 'maxclients', '5');
  const extra = Array.from({ length: 4 }, () => primary.client());
  for (const connection of extra) connection.on('error', () => undefined);
  t.teardown(() => { for (const connection of extra) connection.disconnect(); });
  await waitFor('rejected connections', async () => {
    if (Number((await info(client)).get('rejected_connections')) === 0) throw new Error('none rejected yet');
  });
  for (const connection of extra) connection.disconnect();
  await client.config('SET', 'maxclients', '20');
  await client.bgrewriteaof();
  await waitFor('AOF rewrite done', async () => {
    const fields = await info(client);
    if (fields.get('aof_rewrite_in_progress') !== '0' || fields.get('aof_rewrite_scheduled') !== '0') throw new Error('rewriting');
  });

  const app = await testApp(t, [
    'targets:',
    '  redis:',
    `    - { name: primary, url: "${primary.url}" }`,
    `    - { name: replica, url: "${replica.url}" }`,
  ].join('\n'));
  await app.scrape();
  // Offsets move when the primary pings its replica: take a scrape and INFO that agree on them.
  const { samples, primaryInfo, replicaInfo } = await waitFor('a scrape and INFO that agree', async () => {
    const current = (await app.scrape()).samples;
    const [primaryFields, replicaFields] = await Promise.all([info(client), info(replicaClient)]);
    const lag = Number(primaryFields.get('master_repl_offset')) - Math.min(...replicaOffsets(primaryFields));
    if (valueOf(current, 'upkeep_redis_replication_offset_lag_bytes', { target: 'primary' }) !== lag) throw new Error('offsets moved');
    return { samples: current, primaryInfo: primaryFields, replicaInfo: replicaFields };
  }, 15_000, 50);
  const at = (target: string) => (name: string) => valueOf(samples, name, { target });
  const onPrimary = at('primary');
  const exact: [string, string][] = [
    ['upkeep_redis_connected_clients', 'connected_clients'],
    ['upkeep_redis_blocked_clients', 'blocked_clients'],
    ['upkeep_redis_rejected_connections_total', 'rejected_connections'],
    ['upkeep_redis_max_clients', 'maxclients'],
    ['upkeep_redis_evicted_keys_total', 'evicted_keys'],
    ['upkeep_redis_expired_keys_total', 'expired_keys'],
    ['upkeep_redis_aof_enabled', 'aof_enabled'],
    ['upkeep_redis_connected_replicas', 'connected_slaves'],
  ];
  for (const [metric, field] of exact) t.equal(onPrimary(metric), Number(primaryInfo.get(field)), `${metric} = INFO ${field}`);
  t.equal(onPrimary('upkeep_redis_blocked_clients'), 1);
  t.ok((onPrimary('upkeep_redis_rejected_connections_total') ?? 0) >= 1, 'connections were rejected');
  t.ok((onPrimary('upkeep_redis_evicted_keys_total') ?? 0) > 0, 'keys were evicted');
  t.equal(onPrimary('upkeep_redis_expired_keys_total'), 20);
  t.equal(onPrimary('upkeep_redis_aof_enabled'), 1);
  t.equal(onPrimary('upkeep_redis_connected_replicas'), 1);
  t.equal(onPrimary('upkeep_redis_aof_last_rewrite_success'), primaryInfo.get('aof_last_bgrewrite_status') === 'ok' ? 1 : 0);
  t.equal(onPrimary('upkeep_redis_aof_last_write_success'), primaryInfo.get('aof_last_write_status') === 'ok' ? 1 : 0);
  t.equal(onPrimary('upkeep_redis_aof_last_rewrite_success'), 1);
  const [, policy] = await client.config('GET', 'maxmemory-policy') as [string, string];
  t.equal(valueOf(samples, 'upkeep_redis_maxmemory_policy_info', { target: 'primary', policy }), 1, `policy ${policy}`);
  t.equal(samples.filter((sample: Sample) => sample.name === 'upkeep_redis_maxmemory_policy_info').length, 2, 'one policy per target');
  t.equal(onPrimary('upkeep_redis_replica'), 0);
  t.equal(onPrimary('upkeep_redis_master_link_up'), undefined, 'a primary has no link');
  const uptime = onPrimary('upkeep_redis_uptime_seconds') ?? -1;
  t.ok(uptime >= 0 && uptime <= Number(primaryInfo.get('uptime_in_seconds')), `uptime ${uptime}s, at most INFO's ${primaryInfo.get('uptime_in_seconds')}s read after`);

  const onReplica = at('replica');
  t.equal(onReplica('upkeep_redis_replica'), 1, `role ${replicaInfo.get('role')}`);
  t.equal(onReplica('upkeep_redis_master_link_up'), 1, `master_link_status ${replicaInfo.get('master_link_status')}`);
  t.equal(onReplica('upkeep_redis_connected_replicas'), 0);
  t.equal(onReplica('upkeep_redis_replication_offset_lag_bytes'), undefined, 'measured on the primary');
  t.equal(onReplica('upkeep_redis_aof_enabled'), 0);

  // The primary goes away: the replica's link goes down.
  await primary.stop();
  await waitFor('link down', async () => {
    if ((await info(replicaClient)).get('master_link_status') !== 'down') throw new Error('still up');
  });
  const down = (await app.scrape()).samples;
  t.equal(valueOf(down, 'upkeep_redis_master_link_up', { target: 'replica' }), 0);
  t.equal(valueOf(down, 'upkeep_redis_up', { target: 'primary' }), 0);
  t.equal(valueOf(down, 'upkeep_redis_uptime_seconds', { target: 'primary' }), undefined, 'no stale series of the stopped primary');
});
