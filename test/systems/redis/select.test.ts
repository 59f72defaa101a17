import type { Redis } from 'ioredis';
import t from 'tap';
import { z } from 'zod';
import { Engine } from '../../../src/engine/engine.js';
import { RedisConnection } from '../../../src/systems/redis/client.js';
import { testApp, valueOf } from '../../collectors/helpers.js';
import { bufferLogger } from '../../fixtures/log.js';
import { waitFor } from '../../fixtures/ports.js';
import { fillKeys, startRedis } from '../../fixtures/redis.js';
import { tempDir, testConfig } from '../../http/helpers.js';

/**
 * An ACL user without +select and a URL naming database 1: ioredis's SELECT on connect is refused
 * (NOPERM) and, before the fix, the connection stayed on database 0 and nobody was told: scrapes
 * counted database 0's keys and redis.expire_keys deleted them.
 */
const PATTERN = 'celery-task-meta-*';
// The ACL of the report, less +select; `withSelect` adds it.
const ACL = ['resetkeys', 'resetchannels', '-@all', '+client|setname', '+info', '+slowlog|len', '+scan', '+time', '+bgsave', '+memory|purge', '+slowlog|reset', '+config|get', '+pttl', '+expire', '+unlink', '+set', '+get', '+del', '+eval', '~upkeep:lock:*', `~${PATTERN}`];
const NOPERM = /^the URL names database 1, but SELECT 1 was refused \(NOPERM [^)]*'select'[^)]*\): give the ACL user \+select$/;
const readyz = z.object({ targets: z.array(z.object({ target: z.string(), up: z.boolean(), lastError: z.string().nullable() })) });

t.test('a URL naming database 1 is never used on database 0 when SELECT is refused', async (t) => {
  const server = await startRedis();
  t.teardown(() => server.destroy());
  const admin = server.client();
  t.teardown(() => admin.disconnect());
  const user = async (name: string, ...extra: string[]) => {
    await admin.call('ACL', 'SETUSER', name, 'on', '>change-me', ...ACL, ...extra);
    return `redis://${name}:change-me@127.0.0.1:${server.port}/1`;
  };
  const noSelect = await user('upkeepnosel');
  const withSelect = await user('upkeepsel', '+select');

  /** Keys matching the pattern in database `db`, as the test's own client counts them. */
  const count = async (db: number) => {
    const client: Redis = server.client();
    try {
      await client.select(db);
      return (await client.keys(PATTERN)).length;
    } finally {
      client.disconnect();
    }
  };
  /** Keys matching the pattern as a connection of upkeep's sees them (SCAN: the ACL has no DBSIZE). */
  const seen = async (connection: RedisConnection) => {
    const client = await connection.ready();
    let [cursor, keys] = await client.scan(0, 'MATCH', PATTERN, 'COUNT', 1000);
    let found = keys.length;
    while (cursor !== '0') {
      [cursor, keys] = await client.scan(cursor, 'MATCH', PATTERN, 'COUNT', 1000);
      found += keys.length;
    }
    return found;
  };
  const fill = async () => {
    await admin.select(0);
    await fillKeys(admin, 'celery-task-meta-', 20);
    await admin.select(1);
    await fillKeys(admin, 'celery-task-meta-', 5);
    await admin.select(0);
  };
  await fill();

  const expireKeys = async (url: string) => {
    const logger = bufferLogger();
    const config = testConfig({ state: { dir: await tempDir(t) }, targets: { redis: [{ name: 'db1', url, keyPatterns: [PATTERN] }] } });
    const engine = await Engine.create({ config, log: logger.log });
    t.teardown(() => engine.close());
    const run = () => engine.submit({ remediation: 'redis.expire_keys', params: { target: 'db1', pattern: PATTERN, mode: 'unlink' }, trigger: 'manual' }).done;
    return { run };
  };

  t.test('without +select: the scrape fails and says why', async (t) => {
    const connection = new RedisConnection({ url: noSelect, timeoutSeconds: 5, connectionName: 'upkeep-test' });
    t.teardown(() => connection.close());
    await t.rejects(connection.ready(), { message: NOPERM });
    await t.rejects(connection.ready(), { message: NOPERM }, 'and again on the next scrape');

    const app = await testApp(t, `targets:\n  redis:\n    - name: db1\n      url: "${noSelect}"\n      keyPatterns: ["${PATTERN}"]\n`);
    const { samples } = await app.scrape();
    t.equal(valueOf(samples, 'upkeep_redis_up', { target: 'db1' }), 0, 'down');
    t.equal(valueOf(samples, 'upkeep_redis_pattern_keys', { target: 'db1' }), undefined, 'no count of database 0');
    const ready = readyz.parse((await app.fastify.inject({ method: 'GET', url: '/readyz' })).json());
    t.match(ready.targets.find((target) => target.target === 'db1'), { up: false, lastError: NOPERM });
    t.match(app.logs.find((entry) => entry.msg === 'collection failed'), { collector: 'redis', target: 'db1', err: NOPERM });
  });

  t.test('without +select: redis.expire_keys fails before it does anything', async (t) => {
    const result = await (await expireKeys(noSelect)).run();
    t.equal(result.status, 'failure');
    t.match(result.error, NOPERM);
    t.equal(await count(0), 20, "database 0's keys are untouched");
    t.equal(await count(1), 5, "and database 1's");
  });

  t.test('with +select: the scrape and the run work on database 1 only', async (t) => {
    await fill();
    const app = await testApp(t, `targets:\n  redis:\n    - name: db1\n      url: "${withSelect}"\n      keyPatterns: ["${PATTERN}"]\n`);
    const { samples } = await app.scrape();
    t.equal(valueOf(samples, 'upkeep_redis_up', { target: 'db1' }), 1);
    t.equal(valueOf(samples, 'upkeep_redis_pattern_keys', { target: 'db1', pattern: PATTERN }), 5, "database 1's count");

    const result = await (await expireKeys(withSelect)).run();
    t.equal(result.status, 'success', result.error ?? result.reason ?? 'succeeded');
    t.equal(await count(1), 0, "database 1's keys are gone");
    t.equal(await count(0), 20, "database 0's are untouched");
  });

  t.test('+select taken away while connected: the reconnect refuses to run on database 0', async (t) => {
    await fill();
    t.equal(await count(1), 5);
    const url = await user('upkeeplater', '+select');
    const revoke = async () => {
      await admin.call('ACL', 'SETUSER', 'upkeeplater', '-select');
      // ioredis reconnects by itself (remediations) or on the next use (scrapes), and sends SELECT again.
      await admin.call('CLIENT', 'KILL', 'USER', 'upkeeplater');
    };

    const connection = new RedisConnection({ url, timeoutSeconds: 5, connectionName: 'upkeep-test' });
    t.teardown(() => connection.close());
    t.equal(await seen(connection), 5, 'a scrape connection on database 1');
    const remediations = await expireKeys(url);
    // A dry run's plan counts the keys on the shared remediation client, which stays connected.
    const first = await remediations.run();
    t.equal(first.status, 'success', first.error ?? first.reason ?? 'succeeded');
    t.equal(await count(1), 0);
    await fill();

    await revoke();
    // A scrape that comes before the client has seen its connection go fails with "Connection is
    // closed."; how many do depends on when the kill reaches it. None may count anything.
    const outcomes: string[] = [];
    await waitFor('the scrape connection to refuse', async () => {
      const outcome = await seen(connection).then((keys) => `counted ${keys}`, (err: unknown) => (err instanceof Error ? err.message : String(err)));
      outcomes.push(outcome);
      if (!NOPERM.test(outcome)) throw new Error(outcome);
    }, 10_000, 50);
    t.same(outcomes.filter((outcome) => outcome.startsWith('counted')), [], 'the scrape connection, connecting again, fails and never counts');
    const second = await remediations.run();
    t.equal(second.status, 'failure', 'the shared remediation client, reconnected by ioredis, fails');
    t.match(second.error, NOPERM);
    t.equal(await count(0), 20, "database 0's keys are untouched");
    t.equal(await count(1), 5, "and database 1's");

    await admin.call('ACL', 'SETUSER', 'upkeeplater', '+select');
    t.equal(await seen(connection), 5, 'with +select back, the scrape connection is on database 1 again');
    const third = await remediations.run();
    t.equal(third.status, 'success', third.error ?? third.reason ?? 'succeeded');
    t.equal(await count(1), 0);
    t.equal(await count(0), 20);
  });

  t.test('a URL path that is not a database number is refused, not taken as database 0', async (t) => {
    const connection = new RedisConnection({ url: `redis://127.0.0.1:${server.port}/one`, timeoutSeconds: 5, connectionName: 'upkeep-test' });
    await t.rejects(connection.ready(), { message: 'the URL\'s path must be a database number (redis://HOST:PORT/1), not "/one"' });
    await connection.close();
  });
});

t.test('a database number the server does not have: refused at connect, saying which and what to do', async (t) => {
  const server = await startRedis();
  t.teardown(() => server.destroy());
  const connection = new RedisConnection({ url: `redis://127.0.0.1:${server.port}/99`, timeoutSeconds: 5, connectionName: 'upkeep-test' });
  t.teardown(() => connection.close());
  await t.rejects(connection.ready(), { message: 'the URL names database 99, but SELECT 99 was refused (ERR DB index is out of range): use a database number the server has (its "databases" setting)' });
});
