import t from 'tap';
import { z } from 'zod';
import { fillKeys, startRedis } from '../fixtures/redis.js';
import { serveInstalled, upkeep, writeConfig } from './installed.js';

/**
 * The installed package with an ACL user that may not SELECT and a URL naming database 1. Before,
 * ioredis's refused SELECT left the connections on database 0 unreported: `upkeep run
 * redis.expire_keys` deleted database 0's keys and succeeded, the collector counted database 0 and
 * /readyz said up.
 */
const PATTERN = 'celery-task-meta-*';
const REFUSED = /the URL names database 1, but SELECT 1 was refused \(NOPERM [^)]*\): give the ACL user \+select/;
const readyz = z.object({ targets: z.array(z.object({ collector: z.string(), target: z.string(), up: z.boolean(), lastError: z.string().nullable() })) });

t.test('upkeep with a user refused SELECT fails, saying so, and leaves database 0 alone', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.destroy());
  const admin = redis.client();
  t.teardown(() => admin.disconnect());
  await admin.call('ACL', 'SETUSER', 'upkeepnosel', 'on', '>change-me', 'resetkeys', 'resetchannels', '-@all', '+client|setname', '+info', '+slowlog|len', '+scan', '+time', '+bgsave', '+memory|purge', '+slowlog|reset', '+config|get', '+pttl', '+expire', '+unlink', '+set', '+get', '+del', '+eval', '~upkeep:lock:*', `~${PATTERN}`);
  await fillKeys(admin, 'celery-task-meta-', 20);
  const url = `redis://upkeepnosel:change-me@127.0.0.1:${redis.port}/1`;
  const { file } = await writeConfig(t, {
    collectors: { disabled: ['disks', 'docker', 'postgres', 'http', 'backups', 'logs'] },
    targets: { redis: [{ name: 'db1', url, keyPatterns: [PATTERN] }] },
  });

  const run = await upkeep(['run', 'redis.expire_keys', '--param', 'target=db1', '--param', `pattern=${PATTERN}`, '--param', 'mode=unlink', '--config', file], { timeoutMs: 60_000 });
  t.equal(run.code, 1, `upkeep run fails: ${run.stderr.slice(-500)}`);
  t.match(run.stdout, new RegExp(`^error: ${REFUSED.source}$`, 'm'));
  t.equal(await admin.dbsize(), 20, "database 0's keys are all there");

  const served = await serveInstalled(t, file);
  t.match(await (await fetch(`${served.base}/metrics`)).text(), /^upkeep_redis_up\{target="db1"\} 0$/m, 'the target is down');
  const [target] = readyz.parse(await (await fetch(`${served.base}/readyz`)).json()).targets.filter((entry) => entry.collector === 'redis');
  t.match(target, { target: 'db1', up: false, lastError: REFUSED }, '/readyz says why');
  await served.logged('the failed collection', (line) => line.msg === 'collection failed' && typeof line.err === 'string' && REFUSED.test(line.err));
  t.equal(await served.stop(), 0);
});
