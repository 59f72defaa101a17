import { Socket, type AddressInfo } from 'node:net';
import t from 'tap';
import { z } from 'zod';
import { clientErrorHandler } from '../../src/http/slow-clients.js';
import { buildApp } from '../../src/server.js';
import { parseResponse, postHead, slowClient } from '../fixtures/slow-client.js';
import { gatedAction } from '../engine/gated-action.js';
import { capturedLogger, tempDir, testConfig } from './helpers.js';

const TOKEN = 'tok-slow-4b1e';
const TIMEOUT_ERROR = 'the request did not arrive in time: headers within 0.5s (server.headersTimeoutSeconds), the whole request within 1s (server.requestTimeoutSeconds)';

t.test('slow clients: headers, body and idle timeouts close the connection; a 401 closes it at once', async (t) => {
  const captured = capturedLogger('info');
  const { action, open } = gatedAction();
  const config = testConfig({
    state: { dir: await tempDir(t) },
    server: { authToken: TOKEN, headersTimeoutSeconds: 0.5, requestTimeoutSeconds: 1, idleTimeoutSeconds: 0.5, keepAliveTimeoutSeconds: 0.5, maxHeaderBytes: 8192 },
  });
  const app = await buildApp({ config, log: captured.log, collectors: [], actions: [action] });
  t.teardown(async () => { open(); await app.fastify.close(); });
  await app.fastify.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.fastify.server.address() as AddressInfo;
  const auth = { authorization: `Bearer ${TOKEN}` };
  const body = 'x'.repeat(1000);

  const unauthorised = slowClient(port, { head: postHead('/alertmanager', body.length), trickle: body });
  const trickled = slowClient(port, { head: postHead('/alertmanager', body.length, auth), trickle: body });
  const slowHeaders = slowClient(port, { head: 'POST /alertmanager HTTP/1.1\r\n', trickle: 'X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n' });
  const stalled = slowClient(port, { head: `${postHead('/alertmanager', body.length, auth)}{"version"` });
  const silent = slowClient(port, { head: '' });
  await Promise.all([unauthorised, trickled, slowHeaders, stalled, silent].map((client) => client.closed));

  const refused = parseResponse(unauthorised.response());
  t.equal(refused?.status, 401);
  t.match(refused?.headers, 'connection: close');
  t.same(JSON.parse(refused?.body ?? ''), { error: 'missing bearer token (Authorization: Bearer TOKEN)' });
  t.ok(unauthorised.cutWhileSending(), 'the 401 closed the connection while the client was still sending its body');

  for (const [what, client] of [['a trickled body', trickled], ['trickled headers', slowHeaders]] as const) {
    const reply = parseResponse(client.response());
    t.equal(reply?.status, 408, what);
    t.match(reply?.headers, 'connection: close', what);
    t.same(JSON.parse(reply?.body ?? ''), { error: TIMEOUT_ERROR }, what);
    t.ok(client.cutWhileSending(), `${what}: cut off before the client had sent everything`);
  }
  t.equal(stalled.response(), '', 'a stalled body is closed by the idle timeout, without a reply');
  t.equal(silent.response(), '', 'so is a connection that never sends anything');

  const garbage = slowClient(port, { head: 'BREW /pot HTCPCP/1.0\r\n\r\n' });
  const huge = slowClient(port, { head: `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(9000)}\r\n\r\n` });
  await Promise.all([garbage.closed, huge.closed]);
  t.same(parseResponse(garbage.response()), { status: 400, headers: 'connection: close\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: 34', body: '{"error":"malformed HTTP request"}' });
  t.equal(parseResponse(huge.response())?.status, 431);
  t.same(JSON.parse(parseResponse(huge.response())?.body ?? ''), { error: 'the request headers are over 8192 bytes (server.maxHeaderBytes)' });

  // A request that has arrived is no longer subject to the idle timeout: ?wait=true outlives it.
  const waiting = fetch(`http://127.0.0.1:${port}/remediations/test.gated?wait=true`, {
    method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ params: { n: 1 } }),
  });
  const opened = new Promise<void>((resolve) => setTimeout(() => { open(); resolve(); }, 1500));
  const finished = await waiting;
  await opened;
  t.equal(finished.status, 200);
  t.match(await finished.json(), { status: 'success' });

  const logged = captured.text().split('\n').filter((line) => line !== '').map((line) => z.object({ msg: z.string() }).passthrough().parse(JSON.parse(line)));
  const refusals = logged.filter((line) => line.msg === 'connection refused').map((line) => `${String(line.status)} ${String(line.reason)}`).sort();
  t.same(refusals, [`400 malformed HTTP request`, `408 ${TIMEOUT_ERROR}`, `408 ${TIMEOUT_ERROR}`, '431 the request headers are over 8192 bytes (server.maxHeaderBytes)']);
  t.same(logged.filter((line) => line.msg === 'request').map((line) => `${String(line.method)} ${String(line.path)} ${String(line.status)}`),
    ['POST /alertmanager 401', 'POST /remediations/test.gated?wait=*** 200']);
});

t.test('the client error handler leaves reset or closed sockets alone, and never writes to a closed one', async (t) => {
  const captured = capturedLogger('info');
  const handler = clientErrorHandler(testConfig({}).server, captured.log);
  const fail = (code: string) => Object.assign(new Error(code), { code });

  const reset = new Socket();
  handler(fail('ECONNRESET'), reset);
  t.equal(reset.destroyed, false, 'a reset connection is already gone: nothing to do');
  reset.destroy();
  const destroyed = new Socket();
  destroyed.destroy();
  handler(fail('HPE_INVALID_METHOD'), destroyed);

  const ended = new Socket();
  ended.end();
  const written: unknown[] = [];
  ended.write = (chunk: unknown) => { written.push(chunk); return true; };
  handler(fail('HPE_INVALID_METHOD'), ended);
  t.same(written, [], 'nothing is written to a socket that can no longer send');
  t.equal(ended.destroyed, true);

  t.same(captured.text().trim().split('\n').map((line) => z.object({ msg: z.string(), status: z.number(), remoteAddress: z.null() }).parse(JSON.parse(line))),
    [{ msg: 'connection refused', status: 400, remoteAddress: null }]);
});
