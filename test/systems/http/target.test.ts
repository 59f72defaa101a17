import t from 'tap';
import { httpTarget, httpUrl } from '../../../src/systems/http/target.js';
import { describeIssues } from '../../../src/zod-issues.js';

t.test('an http target: a URL without credentials, a status and a timeout', async (t) => {
  t.same(httpTarget.parse({ name: 'api', url: 'https://api.internal/healthz', expectStatus: 204 }), { name: 'api', url: 'https://api.internal/healthz', expectStatus: 204 });
  const bad = httpTarget.safeParse({ name: 'api', url: 'https://admin:secret@api.internal/', expectStatus: 600 });
  t.equal(bad.error && describeIssues(bad.error.issues), 'url: must not contain credentials (user:password@): upkeep sends none; use an endpoint that needs no login; expectStatus: Too big: expected number to be <=599');
  const alertmanager = httpUrl('must be an http(s) URL').safeParse('ftp://am.internal');
  t.equal(alertmanager.error && describeIssues(alertmanager.error.issues), '(root): must be an http(s) URL');
});
