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
  const empty = await post('');
  t.equal(empty.statusCode, 400);
  t.same(empty.json(), { error: "Body cannot be empty when content-type is set to 'application/json'" });
  const valid = await post('{"version":"4","status":"firing","alerts":[],"note":"a constructor and a prototype, in text"}');
  t.equal(valid.statusCode, 202, 'the words themselves are fine');
});
