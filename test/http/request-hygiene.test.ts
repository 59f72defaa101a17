import { connect, type AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { bearerToken } from '../../src/http/auth.js';
import { foreignCharset } from '../../src/http/json-body.js';
import { repeatedHeader } from '../../src/http/request-hygiene.js';
import { buildApp, type App } from '../../src/server.js';
import { gatedAction } from '../engine/gated-action.js';
import type { BufferLogger } from '../fixtures/log.js';
import { parseResponse } from '../fixtures/slow-client.js';
import { capturedLogger, tempDir, testConfig, webhookPayload } from './helpers.js';

// Refusals of malformed requests, each sent as raw bytes over a real socket: fastify.inject skips
// the router's own checks and node's handling of Host and Expect.

const TOKEN = 'tok-hygiene-5c2d91';

interface Served { app: App; port: number; captured: BufferLogger; open: () => void }

async function serve(t: Test, server: Record<string, unknown> = {}): Promise<Served> {
  const captured = capturedLogger('info');
  const { action, open } = gatedAction();
  const app = await buildApp({ config: testConfig({ state: { dir: await tempDir(t) }, server }), log: captured.log, collectors: [], actions: [action] });
  t.teardown(async () => { open(); await app.fastify.close(); });
  await app.fastify.listen({ host: '127.0.0.1', port: 0 });
  return { app, port: (app.fastify.server.address() as AddressInfo).port, captured, open };
}

/** Sends `text` (a request with `Connection: close`) and gives everything the server sent until it closed. */
function exchange(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no close after: ${received}`)); }, 10_000);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => { received += chunk; });
    socket.on('error', () => undefined);
    socket.on('close', () => { clearTimeout(timer); resolve(received); });
    socket.write(text);
  });
}

/** A request's head: `Host` and `Connection: close`, then `headers` (each line as given). */
function head(method: string, path: string, headers: readonly string[] = []): string {
  return `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${headers.map((line) => `${line}\r\n`).join('')}\r\n`;
}

/** Status and parsed JSON body of one response. */
async function ask(port: number, text: string): Promise<{ status: number; headers: string; body: unknown }> {
  const response = parseResponse(await exchange(port, text));
  if (response === null) throw new Error('no response');
  return { status: response.status, headers: response.headers, body: JSON.parse(response.body) };
}

function requestLines(captured: BufferLogger): string[] {
  return captured.lines().filter((line) => line.msg === 'request').map((line) => `${String(line.method)} ${String(line.path)} ${String(line.status)}`);
}

function refusedLines(captured: BufferLogger): unknown[] {
  return captured.lines().filter((line) => line.msg === 'unauthorised POST refused').map(({ url, reason, level }) => ({ level, url, reason }));
}

const AUTH = `Authorization: Bearer ${TOKEN}`;

t.test('the router\'s refusals (a malformed path, an over-long name or id) are upkeep\'s, do not repeat the path, and are logged', async (t) => {
  const { port, captured } = await serve(t, { authToken: TOKEN });
  const malformed = { error: 'malformed path: a percent-escape in it is not valid, or does not decode to UTF-8' };
  const long = 'x'.repeat(120);
  for (const path of ['/runs/%ZZ', '/runs/%E0%A4%A']) {
    const reply = await ask(port, head('GET', path));
    t.same({ status: reply.status, body: reply.body }, { status: 400, body: malformed }, path);
    t.match(reply.headers, 'content-type: application/json');
  }
  const post = await ask(port, head('POST', '/remediations/%ZZ', [AUTH, 'Content-Length: 0']));
  t.same({ status: post.status, body: post.body }, { status: 400, body: malformed }, 'a POST with the token');
  // Every POST needs the token, this one too: the 401 comes before the 400.
  const anonymous = await ask(port, head('POST', '/remediations/%ZZ', ['Content-Length: 0']));
  t.same({ status: anonymous.status, body: anonymous.body }, { status: 401, body: { error: 'missing bearer token (Authorization: Bearer TOKEN)' } });
  t.match(anonymous.headers, 'www-authenticate: bearer');
  const runId = await ask(port, head('GET', `/runs/${long}`));
  t.same({ status: runId.status, body: runId.body }, { status: 404, body: { error: 'no run has an id over 100 characters (a run id is a UUID)' } });
  const name = await ask(port, head('POST', `/remediations/${long}`, [AUTH, 'Content-Length: 0']));
  t.same({ status: name.status, body: name.body }, { status: 404, body: { error: 'no remediation has a name over 100 characters; GET /remediations lists them' } });
  const secret = `/remediations/${'s3cr3t'.repeat(20)}`;
  t.notMatch(await exchange(port, head('POST', secret, [AUTH, 'Content-Length: 0'])), 's3cr3t', 'the path is not echoed');

  t.same(requestLines(captured), [
    'GET /runs/%ZZ 400', 'GET /runs/%E0%A4%A 400', 'POST /remediations/%ZZ 400', 'POST /remediations/%ZZ 401',
    `GET /runs/${long} 404`, `POST /remediations/${long} 404`, `POST ${secret} 404`,
  ]);
  t.same(refusedLines(captured), [{ level: 40, url: '/remediations/%ZZ', reason: 'no bearer token' }]);
});

t.test('a POST with Content-Type: application/json and an empty body counts as {}', async (t) => {
  const { port, captured } = await serve(t);
  const json = 'Content-Type: application/json';
  const asEmptyObject = await ask(port, `${head('POST', '/remediations/test.gated', [json, 'Content-Length: 2'])}{}`);
  t.same(asEmptyObject.body, { error: 'invalid params: n: Invalid input: expected number, received NaN' }, 'the reply to {}');
  const bodies: [string, string][] = [
    ['Content-Length: 0', head('POST', '/remediations/test.gated', [json, 'Content-Length: 0'])],
    ['no length', head('POST', '/remediations/test.gated', [json])],
    ['an empty chunked body', `${head('POST', '/remediations/test.gated', [json, 'Transfer-Encoding: chunked'])}0\r\n\r\n`],
    ['no content type', head('POST', '/remediations/test.gated', ['Content-Length: 0'])],
  ];
  for (const [what, text] of bodies) {
    const reply = await ask(port, text);
    t.same({ status: reply.status, body: reply.body }, { status: asEmptyObject.status, body: asEmptyObject.body }, what);
  }
  t.equal(asEmptyObject.status, 400);
  t.same(requestLines(captured), Array<string>(5).fill('POST /remediations/test.gated 400'));
});

t.test('a body over server.bodyLimitBytes is a 413 that names the setting and the limit', async (t) => {
  const { port, captured } = await serve(t, { bodyLimitBytes: 4096 });
  const tooLarge = { status: 413, body: { error: 'the body is over 4096 bytes (server.bodyLimitBytes)' } };
  const declared = await ask(port, `${head('POST', '/alertmanager', ['Content-Type: application/json', 'Content-Length: 5000'])}{"version":"4"`);
  t.same({ status: declared.status, body: declared.body }, tooLarge, 'refused on its Content-Length');
  const chunk = `{"pad":"${'x'.repeat(5000)}"}`;
  const streamed = await ask(port, `${head('POST', '/alertmanager', ['Content-Type: application/json', 'Transfer-Encoding: chunked'])}${chunk.length.toString(16)}\r\n${chunk}\r\n0\r\n\r\n`);
  t.same({ status: streamed.status, body: streamed.body }, tooLarge, 'refused as it arrives');
  t.same(requestLines(captured), ['POST /alertmanager 413', 'POST /alertmanager 413']);
});

t.test('the Bearer scheme in any case; Authorization or Content-Type given twice is a 400 naming it', async (t) => {
  const { port, captured } = await serve(t, { authToken: TOKEN });
  const payload = JSON.stringify(await webhookPayload());
  const webhook = (headers: string[]) => `${head('POST', '/alertmanager', ['Content-Type: application/json', `Content-Length: ${Buffer.byteLength(payload)}`, ...headers])}${payload}`;
  for (const scheme of ['bearer', 'BEARER', 'BeArEr']) {
    t.equal((await ask(port, webhook([`Authorization: ${scheme} ${TOKEN}`]))).status, 202, scheme);
  }
  t.equal((await ask(port, webhook([`Authorization: Bearer   ${TOKEN}`]))).status, 202, 'more than one space after the scheme (RFC 9110 §11.4)');
  t.equal((await ask(port, webhook([`Authorization: bearer wrong`]))).status, 401);
  t.equal((await ask(port, webhook([`Authorization: Bearertok`]))).status, 401, 'no space after the scheme');
  const cases: [string, string[], string][] = [
    ['the right token first', [AUTH, 'Authorization: Bearer other'], 'Authorization'],
    ['the right token second', ['authorization: Bearer other', AUTH], 'Authorization'],
    ['two content types', [AUTH, 'content-type: text/plain'], 'Content-Type'],
  ];
  for (const [what, headers, name] of cases) {
    const reply = await ask(port, webhook(headers));
    t.same({ status: reply.status, body: reply.body }, { status: 400, body: { error: `the request gives the ${name} header twice; give it once` } }, what);
  }
  t.same(requestLines(captured), [...Array<string>(4).fill('POST /alertmanager 202'), ...Array<string>(2).fill('POST /alertmanager 401'), ...Array<string>(3).fill('POST /alertmanager 400')]);
  t.same(refusedLines(captured), [{ level: 40, url: '/alertmanager', reason: 'wrong bearer token' }, { level: 40, url: '/alertmanager', reason: 'no bearer token' }]);
});

t.test('Expect: 100-continue is granted only to a POST with the right token', async (t) => {
  const { port, captured } = await serve(t, { authToken: TOKEN });
  const payload = JSON.stringify(await webhookPayload());
  const expecting = (headers: string[]) => head('POST', '/alertmanager', ['Content-Type: application/json', `Content-Length: ${Buffer.byteLength(payload)}`, 'Expect: 100-continue', ...headers]);

  // Refused at once, without 100 Continue, and the connection closed: the body was never asked for.
  for (const headers of [[], ['Authorization: Bearer wrong'], [AUTH, 'Authorization: Bearer wrong']]) {
    const received = await exchange(port, expecting(headers));
    t.notMatch(received, /100 Continue/, `no 100 Continue: ${headers.join(', ')}`);
    const reply = parseResponse(received);
    t.equal(reply?.status, headers.length === 2 ? 400 : 401);
    t.match(reply?.headers, 'connection: close');
  }

  // With the right token: 100 Continue, then the body, then the 202.
  const received = await new Promise<string>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    let sent = false;
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no close after: ${text}`)); }, 10_000);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (!sent && text.startsWith('HTTP/1.1 100 Continue\r\n\r\n')) { sent = true; socket.write(payload); }
    });
    socket.on('close', () => { clearTimeout(timer); resolve(text); });
    socket.write(expecting([AUTH]));
  });
  t.match(received, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 202 /);
  t.same(requestLines(captured), ['POST /alertmanager 401', 'POST /alertmanager 401', 'POST /alertmanager 400', 'POST /alertmanager 202']);
  t.same(refusedLines(captured), [{ level: 40, url: '/alertmanager', reason: 'no bearer token' }, { level: 40, url: '/alertmanager', reason: 'wrong bearer token' }]);
});

t.test('GET /runs/:id in any case; limit in decimal digits only; a charset other than UTF-8 is a 415', async (t) => {
  const { port, captured, app } = await serve(t);
  const queued = await app.fastify.inject({ method: 'POST', url: '/remediations/test.gated', payload: { params: { n: 1 } } });
  const { runId } = queued.json<{ runId: string }>();
  const upper = await ask(port, head('GET', `/runs/${runId.toUpperCase()}`));
  t.equal(upper.status, 200);
  t.match(upper.body, { id: runId });

  const rule = 'invalid querystring: limit: must be a whole number from 1 to 1000 (server.runsPageLimit), in decimal digits';
  for (const limit of ['0x10', '%2010', '1e2', '', '0', '1001', '-1', '1.5']) {
    const reply = await ask(port, head('GET', `/runs?limit=${limit}`));
    t.same({ status: reply.status, body: reply.body }, { status: 400, body: { error: rule } }, `limit=${limit}`);
  }
  t.equal((await ask(port, head('GET', '/runs?limit=010'))).status, 200, 'leading zeros are still decimal');

  const charsetBody = '{"params":{"n":2}}';
  const withCharset = (contentType: string) => `${head('POST', '/remediations/test.gated', [`Content-Type: ${contentType}`, `Content-Length: ${charsetBody.length}`])}${charsetBody}`;
  for (const charset of ['utf-16', 'latin1', '"iso-8859-1"']) {
    const reply = await ask(port, withCharset(`application/json; charset=${charset}`));
    t.same({ status: reply.status, body: reply.body }, { status: 415, body: { error: `the body's charset is ${JSON.stringify(charset.replaceAll('"', ''))}; upkeep reads JSON as UTF-8: send charset=utf-8 or none` } }, charset);
  }
  for (const contentType of ['application/json; charset=utf-8', 'application/json;charset=UTF-8', 'application/json; Charset="Utf-8"']) {
    t.equal((await ask(port, withCharset(contentType))).status, 202, contentType);
  }
  t.same(requestLines(captured), [
    'POST /remediations/test.gated 202', `GET /runs/${runId.toUpperCase()} 200`, ...Array<string>(8).fill('GET /runs?limit=*** 400'), 'GET /runs?limit=*** 200',
    ...Array<string>(3).fill('POST /remediations/test.gated 415'), ...Array<string>(3).fill('POST /remediations/test.gated 202'),
  ]);
});

t.test('an HTTP/1.1 request without Host and an Expect other than 100-continue are refused in upkeep\'s shape and logged', async (t) => {
  const { port, captured } = await serve(t);
  const hostless = await ask(port, 'GET /runs HTTP/1.1\r\nConnection: close\r\n\r\n');
  t.same({ status: hostless.status, body: hostless.body }, { status: 400, body: { error: 'an HTTP/1.1 request needs a Host header' } });
  const http10 = parseResponse(await exchange(port, 'GET /runs HTTP/1.0\r\n\r\n'));
  t.equal(http10?.status, 200, 'HTTP/1.0 has no Host header to give');
  const expectation = await ask(port, head('GET', '/runs', ['Expect: 200-ok']));
  t.same({ status: expectation.status, body: expectation.body }, { status: 417, body: { error: 'upkeep meets no Expect but 100-continue; send the request without the Expect header' } });
  t.same(requestLines(captured), ['GET /runs 400', 'GET /runs 200', 'GET /runs 417']);
});

t.test('repeatedHeader, bearerToken and foreignCharset', async (t) => {
  t.equal(repeatedHeader(['Host', 'a', 'Authorization', 'x', 'Content-Type', 'y']), null);
  t.equal(repeatedHeader(['AUTHORIZATION', 'x', 'authorization', 'x']), 'Authorization');
  t.equal(repeatedHeader(['Content-type', 'x', 'CONTENT-TYPE', 'y']), 'Content-Type');
  t.equal(repeatedHeader(['X-Authorization', 'x', 'Authorization', 'y', 'Content-Types', 'z', 'Content-Type', 'w']), null, 'only the names themselves');
  t.equal(bearerToken('Bearer abc'), 'abc');
  t.equal(bearerToken('bEARER  abc'), 'abc');
  t.equal(bearerToken('Bearer'), '');
  t.equal(bearerToken('Basic abc'), '');
  t.equal(bearerToken('Bearerabc'), '');
  t.equal(bearerToken(undefined), '');
  t.equal(foreignCharset('application/json'), null);
  t.equal(foreignCharset('application/json; charset=UTF-8'), null);
  t.equal(foreignCharset('application/json; foo=bar; charset=utf-16; x=y'), 'utf-16');
  t.equal(foreignCharset('application/json; xcharset=utf-16'), null);
});
