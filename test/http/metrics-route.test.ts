import { once } from 'node:events';
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import t from 'tap';
import type { CollectorModule } from '../../src/collectors/framework/types.js';
import { Gauge } from '../../src/prom.js';
import { buildApp, type App } from '../../src/server.js';
import { capturedLogger, tempDir, testConfig } from './helpers.js';

// Values that gzip cannot squeeze to nothing, so the compressed text (about 1.5 MB) is more than
// loopback's socket buffers hold and a reader that stalls or leaves does so mid-way.
const SERIES = 120_000;
let seed = 7;
const values = Array.from({ length: SERIES }, () => {
  seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
  return seed;
});
const big: CollectorModule = {
  name: 'big',
  families: [{ name: 'test_big_value', help: 'A value per series.', type: 'gauge', labelNames: ['n'] }],
  build: () => [{ collector: 'big', target: 'one', collect: async () => ({ readings: values.map((value, n) => ({ family: 'test_big_value', labels: { n: String(n) }, value })) }) }],
};

async function serve(t: { teardown(fn: () => unknown): void }): Promise<{ app: App; port: number; log: ReturnType<typeof capturedLogger> }> {
  const log = capturedLogger('info');
  const app = await buildApp({ config: testConfig({ state: { dir: await tempDir(t) } }), log: log.log, collectors: [big] });
  t.teardown(() => app.fastify.close());
  await app.fastify.listen({ host: '127.0.0.1', port: 0 });
  return { app, port: (app.fastify.server.address() as AddressInfo).port, log };
}

function get(port: number, headers: Record<string, string>, method = 'GET', agent?: Agent): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => httpRequest({ host: '127.0.0.1', port, path: '/metrics', method, headers, ...(agent ? { agent } : {}) }, resolve).on('error', reject).end());
}

/** The body's bytes as they came over the wire; `stallEvery` reads, a pause, so the server's writes wait. */
async function body(response: IncomingMessage, stallEvery = 0): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) {
    chunks.push(chunk as Buffer);
    if (stallEvery > 0 && chunks.length % stallEvery === 0 && chunks.length <= 100) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return Buffer.concat(chunks);
}

/** The exposition without the lines that change from one scrape to the next (durations, ages). */
const steady = (text: string) => text.split('\n').filter((line) => line.startsWith('test_big_value')).join('\n');

t.test('GET /metrics is gzipped when the scraper asks for it, as Prometheus does, and the same text', { timeout: 120_000 }, async (t) => {
  const { port, log } = await serve(t);
  const plain = await get(port, {});
  t.equal(plain.headers['content-encoding'], undefined, 'without Accept-Encoding: the text as it is');
  t.equal(plain.headers.vary, 'Accept-Encoding', 'a cache in between keeps the two apart');
  const text = (await body(plain)).toString();
  t.equal(steady(text).split('\n').length, SERIES);
  t.match(text, /^test_big_value\{n="119999"\} \d+$/m);

  const zipped = await get(port, { 'accept-encoding': 'gzip' });
  t.equal(zipped.statusCode, 200);
  t.equal(zipped.headers['content-encoding'], 'gzip');
  t.equal(zipped.headers.vary, 'Accept-Encoding');
  t.match(zipped.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  const wire = await body(zipped, 5);
  const unzipped = gunzipSync(wire).toString();
  t.equal(steady(unzipped), steady(text), 'read slowly, every series arrives intact: a slice is reused only once gzip has taken it');
  t.ok(wire.length * 3 < Buffer.byteLength(text), `${wire.length} bytes on the wire for ${Buffer.byteLength(text)} of text`);

  for (const [header, encoding] of [['gzip;q=0', undefined], ['*', 'gzip'], ['identity', undefined], ['br', undefined]] as const) {
    const response = await get(port, { 'accept-encoding': header });
    t.equal(response.headers['content-encoding'], encoding, `Accept-Encoding: ${header}`);
    const bytes = await body(response);
    t.equal(steady((encoding ? gunzipSync(bytes) : bytes).toString()), steady(text));
  }

  const head = await get(port, { 'accept-encoding': 'gzip' }, 'HEAD');
  t.equal(head.statusCode, 200, 'HEAD');
  t.equal(head.headers['content-encoding'], 'gzip');
  t.equal((await body(head)).length, 0, 'HEAD has no body');
  t.same(log.lines().filter((line) => Number(line.level) >= 40), [], 'nothing logged above info');
});

t.test('a gzip reader that goes away mid-way is no error, and the next scrape is whole', { timeout: 120_000 }, async (t) => {
  const { port, log } = await serve(t);
  for (let i = 0; i < 3; i += 1) {
    const response = await get(port, { 'accept-encoding': 'gzip' });
    await once(response, 'data');
    response.destroy();
  }
  const again = await get(port, { 'accept-encoding': 'gzip' });
  t.equal(steady(gunzipSync(await body(again)).toString()).split('\n').length, SERIES);
  t.same(log.lines().filter((line) => Number(line.level) >= 40), [], 'a client gone is its own doing: nothing logged');
});

t.test('a family that fails mid-way cuts a gzipped response short and is logged once', { timeout: 60_000 }, async (t) => {
  const { app, port, log } = await serve(t);
  let failing = true;
  new Gauge({ name: 'test_last', help: 'Fails to collect when told to.', registers: [app.registry], collect() { if (failing) throw new Error('collect failed'); this.set(1); } });
  const outcome = await new Promise<string>((resolve) => {
    httpRequest({ host: '127.0.0.1', port, path: '/metrics', headers: { 'accept-encoding': 'gzip' } }, (response) => {
      response.on('end', () => resolve('complete'));
      response.on('error', () => resolve('cut'));
      response.resume();
    }).on('error', () => resolve('cut')).end();
  });
  t.equal(outcome, 'cut', 'never a complete body');
  failing = false;
  const whole = gunzipSync(await body(await get(port, { 'accept-encoding': 'gzip' }))).toString();
  t.match(whole, /^test_last 1$/m, 'the next scrape is whole');
  t.same(log.lines().filter((line) => line.level === 50).map(({ msg, err }) => ({ msg, err })), [{ msg: 'the exposition failed mid-way', err: 'collect failed' }]);
});

t.test('a scrape under way when shutdown begins is sent whole, then its connection ends, so the close need not wait for a timeout', { timeout: 120_000 }, async (t) => {
  for (const encoding of ['identity', 'gzip']) {
    const log = capturedLogger('info');
    // Timeouts far beyond the wait below: a connection left open would hold the close for a minute.
    const app = await buildApp({ config: testConfig({ state: { dir: await tempDir(t) }, server: { headersTimeoutSeconds: 60, requestTimeoutSeconds: 60, idleTimeoutSeconds: 60 } }), log: log.log, collectors: [big] });
    let release = () => {};
    const held = new Promise<void>((resolve) => { release = resolve; });
    // Registered last: the series before it are sent (headers and all) while it waits.
    new Gauge({ name: 'test_last', help: 'Waits to be let go.', registers: [app.registry], async collect() { await held; this.set(1); } });
    await app.fastify.listen({ host: '127.0.0.1', port: 0 });
    // A client that keeps its connections as long as the server does (node's default agent drops an idle one after 5 s).
    const agent = new Agent({ keepAlive: true });
    t.teardown(() => agent.destroy());
    const response = await get((app.fastify.server.address() as AddressInfo).port, { 'accept-encoding': encoding }, 'GET', agent);
    t.equal(response.headers.connection, 'keep-alive', `${encoding}: the scrape began before the shutdown`);
    const socketEnded = once(response.socket, 'close').then(() => 'the connection ended');
    const closed = app.fastify.close().then(() => 'closed');
    const received = body(response);
    release();
    const text = (encoding === 'gzip' ? gunzipSync(await received) : await received).toString();
    t.match(text, /^test_last 1$/m, `${encoding}: the scrape is whole`);
    t.equal(steady(text).split('\n').length, SERIES);
    const waited = new Promise<string>((resolve) => setTimeout(() => resolve('still open after 5 s'), 5000).unref());
    t.equal(await Promise.race([socketEnded, waited]), 'the connection ended', encoding);
    t.equal(await Promise.race([closed, waited]), 'closed', `${encoding}: the server closed`);
  }
});
