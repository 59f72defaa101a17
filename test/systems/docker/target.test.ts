import t from 'tap';
import { dockerTarget } from '../../../src/systems/docker/target.js';
import { describeIssues } from '../../../src/zod-issues.js';

t.test('a docker target is a socket or a host, not both', async (t) => {
  t.same(dockerTarget.parse({ name: 'local' }), { name: 'local', diskRefreshSeconds: 300, logRefreshSeconds: 60 });
  t.same(dockerTarget.parse({ name: 'remote', host: '10.0.0.2', port: 2376 }), { name: 'remote', host: '10.0.0.2', port: 2376, diskRefreshSeconds: 300, logRefreshSeconds: 60 });
  const both = dockerTarget.safeParse({ name: 'x', socketPath: '/run/docker.sock', host: '10.0.0.2' });
  t.equal(both.error && describeIssues(both.error.issues), '(root): set socketPath or host, not both');
});
