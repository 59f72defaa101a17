import t from 'tap';
import { tokenMatches } from '../../src/http/auth.js';
import { nodeCrypto, sha256 } from '../../src/lazy.js';
import { capturedLogger, postWebhook, startApp, tempDir, testConfig, webhookPayload } from './helpers.js';

const TOKEN = 'tok-7f3a9c2e51d84b06a1e2';

t.test('every POST needs the bearer token; the token never reaches the logs', async (t) => {
  const captured = capturedLogger('trace');
  const app = await startApp(t, testConfig({ state: { dir: await tempDir(t) }, server: { authToken: TOKEN, bodyLimitBytes: 4096 } }), captured.log);
  const payload = await webhookPayload();

  const missing = await postWebhook(app, payload);
  t.equal(missing.statusCode, 401);
  t.same(JSON.parse(missing.raw), { error: 'missing bearer token (Authorization: Bearer TOKEN)' });
  const wrong = await postWebhook(app, payload, 'not-the-token');
  t.equal(wrong.statusCode, 401);
  t.same(JSON.parse(wrong.raw), { error: 'invalid bearer token' });
  const manual = await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.vacuum', payload: { params: {} }, headers: { authorization: `Basic ${TOKEN}` } });
  t.equal(manual.statusCode, 401, 'another scheme is refused');
  t.equal(manual.headers['www-authenticate'], 'Bearer');

  const right = await postWebhook(app, payload, TOKEN);
  t.equal(right.statusCode, 202, 'the right token is accepted');
  t.match(right.body?.ignored[0]?.reason, /no remediation rule matches/);
  const invalid = await app.fastify.inject({ method: 'POST', url: '/alertmanager', payload: { version: '4' }, headers: { authorization: `Bearer ${TOKEN}` } });
  t.equal(invalid.statusCode, 400);
  const tooLarge = await app.fastify.inject({
    method: 'POST', url: '/alertmanager', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    payload: JSON.stringify({ ...payload, padding: 'x'.repeat(8192) }),
  });
  t.equal(tooLarge.statusCode, 413);
  t.match(tooLarge.json(), { error: /body/i });
  t.equal((await app.fastify.inject({ method: 'GET', url: '/runs' })).statusCode, 200, 'GETs need no token');

  const logs = captured.text();
  t.match(logs, /unauthorised POST refused/, 'the refusals were logged');
  t.match(logs, /"authorization":"\*\*\*"|alertmanager webhook handled/, 'requests were logged');
  t.notMatch(logs, TOKEN, 'the token never appears in the logs');
});

t.test('without a token configured, POSTs are open', async (t) => {
  const app = await startApp(t, testConfig({ state: { dir: await tempDir(t) } }));
  t.equal((await postWebhook(app, await webhookPayload())).statusCode, 202);
});

t.test('tokenMatches compares whole tokens of any length', async (t) => {
  t.equal(tokenMatches('abc', 'abc'), true);
  t.equal(tokenMatches('abc', 'abcd'), false);
  t.equal(tokenMatches('', 'abc'), false);
});

t.test('sha256 gives the same digest on a node without crypto.hash (before 20.12)', async (t) => {
  const crypto = nodeCrypto();
  const expected = crypto.createHash('sha256').update('tök').digest('hex');
  t.equal(sha256('tök').toString('hex'), expected, 'with crypto.hash');
  const { hash } = crypto;
  t.teardown(() => { Reflect.set(crypto, 'hash', hash); });
  t.ok(Reflect.set(crypto, 'hash', undefined) && crypto.hash === undefined, 'crypto.hash taken away');
  t.equal(sha256('tök').toString('hex'), expected, 'with createHash');
});
