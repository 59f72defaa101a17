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
