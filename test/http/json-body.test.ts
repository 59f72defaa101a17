import t from 'tap';
import { foreignCharset } from '../../src/http/json-body.js';
import { capturedLogger, journalLines, postWebhook, startApp, tempDir, testConfig, VACUUM_RULE, webhookPayload } from './helpers.js';

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

const NOT_UTF8 = JSON.stringify({ error: 'the body is not valid UTF-8; upkeep reads JSON as UTF-8: send its text encoded as UTF-8' });

t.test('a body that is not UTF-8 is a 400 that says so, and runs nothing: no byte becomes U+FFFD', async (t) => {
  const stateDir = await tempDir(t);
  const app = await startApp(t, testConfig({ state: { dir: stateDir }, targets: { redis: [{ name: 'cache', url: 'redis://127.0.0.1:1' }] }, server: { authToken: 'tok-utf8' } }), capturedLogger('info').log);
  const headers = { 'content-type': 'application/json', authorization: 'Bearer tok-utf8' };
  const bytes = (...parts: Array<string | number[]>) => Buffer.concat(parts.map((part) => typeof part === 'string' ? Buffer.from(part, 'utf8') : Uint8Array.from(part)));
  const bodies: Array<[string, string, Buffer]> = [
    ['a lone 0xff', '/remediations/redis.bgsave', bytes('{"params":{"target":"ca', [0xff], 'che"},"dryRun":true}')],
    ['a sequence cut short', '/remediations/redis.bgsave', bytes('{"params":{"target":"cache', [0xe2, 0x82], '"},"dryRun":true}')],
    ['an encoded surrogate', '/remediations/redis.bgsave', bytes('{"params":{"target":"cache', [0xed, 0xa0, 0x80], '"}}')],
    ['an overlong "/"', '/remediations/redis.bgsave', bytes('{"params":{"target":"cache', [0xc0, 0xaf], '"}}')],
    ['Latin-1 in a label', '/alertmanager', bytes('{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"caf', [0xe9], '"},"startsAt":"2026-12-04T00:00:00Z","fingerprint":"f"}]}')],
  ];
  for (const [what, url, payload] of bodies) {
    const reply = await app.fastify.inject({ method: 'POST', url, headers, payload });
    t.same([reply.statusCode, reply.body], [400, NOT_UTF8], what);
  }
  // Well-formed UTF-8 is read as it was sent: the alert matches no rule, and its name comes back whole.
  const valid = await app.fastify.inject({ method: 'POST', url: '/alertmanager', headers, payload: bytes('{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"caf', [0xc3, 0xa9], ' \u{1f9f9}"},"startsAt":"2026-12-04T00:00:00Z","fingerprint":"f"}]}') });
  t.equal(valid.statusCode, 202);
  t.match(valid.json(), { accepted: [], ignored: [{ fingerprint: 'f', alertname: 'caf\u00e9 \u{1f9f9}' }] });
  t.same((await app.fastify.inject({ method: 'GET', url: '/runs' })).json(), { runs: [], next: null }, 'nothing was queued');

  // Over a real socket, as a client sends it.
  await app.fastify.listen({ host: '127.0.0.1', port: 0 });
  const address = app.fastify.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const sent = await fetch(`http://127.0.0.1:${port}/remediations/redis.bgsave`, { method: 'POST', headers, body: new Uint8Array(bodies[0]?.[2] ?? []) });
  t.same([sent.status, sent.headers.get('content-type'), await sent.text()], [400, 'application/json; charset=utf-8', NOT_UTF8]);
});

t.test('a name with invisible format characters passes as UTF-8, then is refused by the params: a manual run with a 400, an alert run as rejected', async (t) => {
  const refusal = 'invalid params: table: must not contain invisible Unicode format characters (U+202E): they make a name display as another';
  const stateDir = await tempDir(t);
  // Refused before any connection: no PostgreSQL listens on port 1.
  const targets = { postgres: [{ name: 'main', url: 'postgres://upkeep@127.0.0.1:1/app', databases: ['app'] }] };
  const app = await startApp(t, testConfig({ state: { dir: stateDir }, targets, remediation: { rules: [VACUUM_RULE] } }), capturedLogger('info').log);
  const manual = await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.vacuum', payload: { params: { target: 'main', database: 'app', table: 'public.ev\u202eents' } } });
  t.same([manual.statusCode, manual.body], [400, JSON.stringify({ error: refusal })]);
  t.same((await app.fastify.inject({ method: 'GET', url: '/runs' })).json(), { runs: [], next: null }, 'nothing queued or journalled');

  const alert = await postWebhook(app, await webhookPayload({ fingerprint: 'bidi', labels: { table: 'ev\u202eents' } }));
  t.equal(alert.statusCode, 202);
  t.same(alert.body?.accepted, []);
  t.match(alert.body?.ignored, [{ fingerprint: 'bidi', remediation: 'postgres.vacuum', reason: `rejected: ${refusal}` }]);
  t.same((await journalLines(stateDir)).map((line) => [line.status, line.reason, line.startedAt]), [['rejected', refusal, undefined]], 'journalled as rejected, never started');
});

t.test('a charset other than UTF-8 is a 415, answered before the bytes are looked at', async (t) => {
  const app = await startApp(t, testConfig({ state: { dir: await tempDir(t) } }), capturedLogger('info').log);
  const latin1 = await app.fastify.inject({ method: 'POST', url: '/alertmanager', headers: { 'content-type': 'application/json; charset="ISO-8859-1"' }, payload: Buffer.from('{"version":"4","note":"caf\u00e9"}', 'latin1') });
  t.same([latin1.statusCode, latin1.body], [415, JSON.stringify({ error: 'the body\'s charset is "ISO-8859-1"; upkeep reads JSON as UTF-8: send charset=utf-8 or none' })]);
  t.equal(foreignCharset(undefined), null);
  t.equal(foreignCharset('application/json; charset="utf-8"'), null);
  t.equal(foreignCharset('application/json; format=flowed'), null, 'a parameter that is no charset');
  t.equal(foreignCharset('application/json; charset='), '', 'an empty charset is not UTF-8');
});
