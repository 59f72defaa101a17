import t from 'tap';
import { redisTarget } from '../../../src/systems/redis/target.js';
import { describeIssues } from '../../../src/zod-issues.js';

t.test('a redis target takes redis:// or rediss:// and an optional CA file', async (t) => {
  t.same(redisTarget.parse({ name: 'cache', url: 'rediss://127.0.0.1:6380', caFile: '/etc/ca.pem' }), {
    name: 'cache', url: 'rediss://127.0.0.1:6380', keyPatterns: [], keyPatternRefreshSeconds: 60, caFile: '/etc/ca.pem',
  });
  const bad = redisTarget.safeParse({ name: 'cache', url: 'http://127.0.0.1', caFile: '' });
  t.equal(bad.error && describeIssues(bad.error.issues), 'url: must be a redis:// or rediss:// URL; caFile: Too small: expected string to have >=1 characters');
});

t.test('a Redis URL\'s path is a database number or nothing', async (t) => {
  const url = (text: string) => redisTarget.safeParse({ name: 'cache', url: text });
  for (const good of ['redis://h:6379', 'redis://h:6379/', 'redis://h:6379/0', 'rediss://u:p@h:6380/15']) t.ok(url(good).success, good);
  for (const bad of ['redis://h:6379/one', 'redis://h:6379/1x', 'redis://h:6379/1/2']) {
    t.match(url(bad).error?.issues, [{ message: 'the path must be a database number (redis://HOST:PORT/1), or none for database 0' }], bad);
  }
});
