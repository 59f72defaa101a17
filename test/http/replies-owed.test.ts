import t from 'tap';
import { z } from 'zod';
import type { AnyAction } from '../../src/actions/contract.js';
import { runRecordSchema } from '../../src/engine/journal.js';
import { buildApp, type App } from '../../src/server.js';
import { flakyAction, gatedAction } from '../engine/gated-action.js';
import { waitFor } from '../fixtures/ports.js';
import { slowClient } from '../fixtures/slow-client.js';
import { capturedLogger, finishedRun, journalLines, tempDir, testConfig } from './helpers.js';

// Bytes that are no HTTP, sent right behind a whole request, in the same TCP send.
const GARBAGE = 'GARBAGE\r\n\r\n';
const TOKEN = 'tok-pipelined-7c2d';
const REFUSAL = 'HTTP/1.1 400 Bad Request\nConnection: close\nContent-Type: application/json; charset=utf-8\nContent-Length: 34\n\n{"error":"malformed HTTP request"}';

/** A real listening app, logging at info into a buffer; `beforeClose` lets held runs end. */
async function serve(t: { teardown(fn: () => unknown): void }, raw: Record<string, unknown>, actions?: readonly AnyAction[], beforeClose: () => void = () => undefined) {
  const captured = capturedLogger('info');
  const stateDir = await tempDir(t);
  const config = testConfig({ ...raw, state: { dir: stateDir }, server: { authToken: TOKEN, keepAliveTimeoutSeconds: 5 } });
  const app = await buildApp({ config, log: captured.log, collectors: [], ...(actions ? { actions } : {}) });
  t.teardown(async () => { beforeClose(); await app.fastify.close(); });
  await app.fastify.listen({ host: '127.0.0.1', port: 0 });
  const address = app.fastify.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return { app, port, stateDir, logged: () => logLines(captured.text()) };
}

/** The app with the two test actions: test.action counts its runs, test.gated waits until `open()`. */
async function listening(t: { teardown(fn: () => unknown): void }) {
  const counted = flakyAction();
  const gated = gatedAction();
  return { ...await serve(t, {}, [counted, gated.action], gated.open), counted, open: gated.open };
}

function post(path: string, body: string, length = Buffer.byteLength(body)): string {
  return `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n${body}`;
}

/** Each reply in what the client received, in order: its head (without Date, which changes) and its body, lines joined by \n. */
function replies(received: string): string[] {
  const found: string[] = [];
  let rest = received;
  while (rest !== '') {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) return [...found, `unterminated: ${rest}`];
    const head = rest.slice(0, end).split('\r\n').filter((line) => !/^date:/i.test(line));
    const length = Number(/^content-length: (\d+)$/im.exec(head.join('\n'))?.[1] ?? 0);
    found.push(`${head.join('\n')}\n\n${rest.slice(end + 4, end + 4 + length)}`);
    rest = rest.slice(end + 4 + length);
  }
  return found;
}

function accepted(runId: string): string {
  return `HTTP/1.1 202 Accepted\ncontent-type: application/json; charset=utf-8\ncontent-length: 48\nConnection: keep-alive\nKeep-Alive: timeout=5\n\n{"runId":"${runId}"}`;
}

/** The `request` lines of POSTs (the test's own GETs left out) and the `connection refused` lines, in the order they were written. */
function logLines(text: string): string[] {
  const line = z.object({ msg: z.string(), method: z.string().optional(), path: z.string().optional(), status: z.number().optional(), reason: z.string().optional() });
  return text.split('\n').filter((raw) => /"msg":"connection refused"|"method":"POST".*"msg":"request"/.test(raw)).map((raw) => line.parse(JSON.parse(raw)))
    .map((entry) => entry.msg === 'request' ? `request ${entry.method} ${entry.path} ${entry.status}` : `refused ${entry.status} ${entry.reason}`);
}

async function runs(app: App): Promise<unknown[]> {
  return z.object({ runs: z.array(z.unknown()) }).parse((await app.fastify.inject({ method: 'GET', url: '/runs' })).json()).runs;
}

t.test('a whole POST with bytes that are no HTTP behind it: its 202 goes out and is logged, then the 400; the run is the one the 202 named', async (t) => {
  const { app, port, stateDir, counted, logged } = await listening(t);
  const client = slowClient(port, { head: post('/remediations/test.action', '{"params":{"n":1},"dryRun":false}') + GARBAGE });
  await client.closed;
  const runId = /"runId":"([0-9a-f-]{36})"/.exec(client.response())?.[1] ?? 'none';
  t.same(replies(client.response()), [accepted(runId), REFUSAL], 'both replies, in order, and nothing else');
  const run = await finishedRun(app, runId);
  t.match(run, { id: runId, remediation: 'test.action', trigger: 'manual', status: 'success', params: { n: 1 }, dryRun: false });
  t.equal(counted.executed, 1, 'it ran once');
  t.same((await runs(app)).map((record) => runRecordSchema.parse(record).id), [runId], 'GET /runs has that run and no other');
  t.same([...new Set((await journalLines(stateDir)).map((line) => line.id))], [runId], 'so has the journal');
  t.same(logged(), ['request POST /remediations/test.action 202', 'refused 400 malformed HTTP request']);
});

t.test('a Content-Length one byte short: the cut body is refused as not JSON, that reply closes the connection, and nothing runs', async (t) => {
  const { app, port, counted, logged } = await listening(t);
  const body = '{"params":{"n":1},"dryRun":false}';
  const client = slowClient(port, { head: post('/remediations/test.action', body, body.length - 1) + GARBAGE });
  await client.closed;
  const syntax = z.instanceof(SyntaxError).parse((() => { try { return JSON.parse(body.slice(0, -1)); } catch (err) { return err; } })());
  const error = JSON.stringify({ error: `the body is not valid JSON: ${syntax.message}` });
  t.same(replies(client.response()), [`HTTP/1.1 400 Bad Request\nconnection: close\ncontent-type: application/json; charset=utf-8\ncontent-length: ${error.length}\n\n${error}`],
    'the 400 for the body; the one for the bytes after it had no connection left to go on');
  t.same(await runs(app), []);
  t.equal(counted.executed, 0);
  t.same(logged(), ['request POST /remediations/test.action 400', 'refused 400 malformed HTTP request']);
});

t.test('pipelined requests are answered in order, however long the first takes, before the refusal; what comes after the error is left unread', async (t) => {
  const { app, port, counted, open, logged } = await listening(t);
  let clientErrors = 0;
  app.fastify.server.on('clientError', () => { clientErrors += 1; });
  const client = slowClient(port, { head: post('/remediations/test.gated?wait=true', '{"params":{"n":7}}') + post('/remediations/test.action', '{"params":{"n":2}}') + GARBAGE });
  await new Promise((resolve) => setTimeout(resolve, 200));
  for (let chunk = 0; chunk < 4; chunk += 1) client.socket.write('x'.repeat(1024));
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.equal(client.response(), '', 'nothing is sent while the first reply is owed: not the second reply, not the refusal');
  open();
  await client.closed;
  const [first, second, third, ...more] = replies(client.response());
  const waited = runRecordSchema.parse(JSON.parse(first?.split('\n\n')[1] ?? 'null'));
  t.match(waited, { remediation: 'test.gated', status: 'success', params: { n: 7 } }, 'first, the finished run the first request waited for');
  const runId = /"runId":"([0-9a-f-]{36})"/.exec(second ?? '')?.[1] ?? 'none';
  t.same([second, third, more], [accepted(runId), REFUSAL, []], 'then the second request\'s 202, then the refusal');
  t.match(await finishedRun(app, runId), { remediation: 'test.action', status: 'success' });
  t.equal(counted.executed, 1);
  t.equal(clientErrors, 1, 'the bytes sent after the error were not parsed into more errors');
  t.same(logged(), ['request POST /remediations/test.gated?wait=*** 200', 'request POST /remediations/test.action 202', 'refused 400 malformed HTTP request']);
});

t.test('a request whose chunked body breaks is refused at once: it never arrived, so it is owed nothing and never runs', async (t) => {
  const { app, port, counted, logged } = await listening(t);
  const head = `POST /remediations/test.action HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`;
  const client = slowClient(port, { head: `${head}5\r\n{"par\r\nZZ\r\n` });
  await client.closed;
  t.same(replies(client.response()), [REFUSAL]);
  t.same(await runs(app), []);
  t.equal(counted.executed, 0);
  t.same(logged(), ['refused 400 malformed HTTP request']);
});

t.test('a client that hangs up while its reply is owed: the run it asked for still goes on, and the refusal is given up once that reply is', async (t) => {
  const { app, port, open, logged } = await listening(t);
  const client = slowClient(port, { head: post('/remediations/test.gated?wait=true', '{"params":{"n":9}}') + GARBAGE });
  await new Promise((resolve) => setTimeout(resolve, 200));
  client.socket.destroy();
  await client.closed;
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.same(logged(), [], 'the refusal still waits: the socket is not read meanwhile, so the hang-up shows only once the reply is written');
  open();
  const [run] = await runs(app);
  t.match(await finishedRun(app, runRecordSchema.parse(run).id), { remediation: 'test.gated', status: 'success', params: { n: 9 } });
  await waitFor('the refusal', async () => { if (logged().length < 2) throw new Error('not yet'); }, 5000, 20);
  t.same(logged(), ['request POST /remediations/test.gated?wait=*** 200', 'refused 400 malformed HTTP request']);
});

t.test('the bytes of the report, in one send: redis.bgsave answers 202 before the 400, and the run journalled is the one the 202 named', async (t) => {
  // No Redis listens on port 1: the run fails, and is journalled, whatever the machine has.
  const { app, port, stateDir, logged } = await serve(t, { targets: { redis: [{ name: 'cache', url: 'redis://127.0.0.1:1' }] } });
  const client = slowClient(port, { head: post('/remediations/redis.bgsave', '{"params":{"target":"cache"},"dryRun":false}') + GARBAGE });
  await client.closed;
  const runId = /"runId":"([0-9a-f-]{36})"/.exec(client.response())?.[1] ?? 'none';
  t.same(replies(client.response()), [accepted(runId), REFUSAL]);
  t.match(await finishedRun(app, runId), { remediation: 'redis.bgsave', trigger: 'manual', params: { target: 'cache' }, dryRun: false, status: 'failure', startedAt: String });
  t.same([...new Set((await journalLines(stateDir)).map((line) => line.id))], [runId]);
  t.same(logged(), ['request POST /remediations/redis.bgsave 202', 'refused 400 malformed HTTP request']);
});
