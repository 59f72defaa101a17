import t from 'tap';
import { capturedLogger, startApp, tempDir, testConfig } from './helpers.js';

t.test('a refused JSON body is a 400 that says why: a syntax error, or a prototype key', async (t) => {
  const app = await startApp(t, testConfig({ state: { dir: await tempDir(t) } }), capturedLogger('info').log);
  const post = (payload: string) => app.fastify.inject({ method: 'POST', url: '/alertmanager', headers: { 'content-type': 'application/json' }, payload });
  const pollution = { error: 'the body has a "__proto__" or "constructor.prototype" key; upkeep refuses them (prototype pollution)' };
  for (const body of ['{"__proto__":{"isAdmin":true},"version":"4"}', '{"version":"4","alerts":[{"labels":{"constructor":{"prototype":{"x":1}}}}]}']) {
    const reply = await post(body);
    t.equal(reply.statusCode, 400, body);
    t.same(reply.json(), pollution, body);
  }
  const broken = await post('{"version":"4",');
  t.equal(broken.statusCode, 400);
  t.match(broken.json(), { error: /^the body is not valid JSON: \S/ });
  // An empty body is {} (docs/api.md), as without a content type: not Fastify's "Body cannot be empty".
  const empty = await post('');
  const emptyObject = await post('{}');
  t.equal(empty.statusCode, 400);
  t.match(emptyObject.json(), { error: /^invalid body: / });
  t.same(empty.json(), emptyObject.json());
  const valid = await post('{"version":"4","status":"firing","alerts":[],"note":"a constructor and a prototype, in text"}');
  t.equal(valid.statusCode, 202, 'the words themselves are fine');
});

t.test('a body that gives a key twice is a 400 that names it, and runs nothing', async (t) => {
  const app = await startApp(t, testConfig({ state: { dir: await tempDir(t) } }), capturedLogger('info').log);
  const post = (url: string, payload: string) => app.fastify.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload });
  const webhook = await post('/alertmanager', '{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"X","table":"a","table":"b"},"startsAt":"2026-12-04T00:00:00Z","fingerprint":"f"}]}');
  t.equal(webhook.statusCode, 400);
  t.same(webhook.json(), { error: 'the body gives the key "alerts[0].labels.table" twice; give each key once' });
  const manual = await post('/remediations/files.cleanup', '{"params":{"name":"tmp","olderThanHours":720,"olderThanHours":0},"dryRun":true}');
  t.equal(manual.statusCode, 400);
  t.same(manual.json(), { error: 'the body gives the key "params.olderThanHours" twice; give each key once' });
  const top = await post('/remediations/files.cleanup', '{"dryRun":true,"params":{"name":"tmp"},"dryRun":false}');
  t.same(top.json(), { error: 'the body gives the key "dryRun" twice; give each key once' });
  const runs = await app.fastify.inject({ method: 'GET', url: '/runs' });
  t.same(runs.json(), { runs: [], next: null }, 'no run was queued');
});
