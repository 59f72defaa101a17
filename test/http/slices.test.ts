import { once } from 'node:events';
import { Writable } from 'node:stream';
import { createServer, get, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { exposition, type FamilyText } from '../../src/collectors/framework/text.js';
import { ClientGone, sendCopies, sendSlices } from '../../src/http/slices.js';
import { Gauge } from '../../src/prom.js';
import { buildApp } from '../../src/server.js';
import { capturedLogger, tempDir, testConfig } from './helpers.js';

// About 6.7 MB of lines, numbered so that a slice overwritten before the socket took it would show.
const LINES = 300_000;
const numbered: FamilyText = {
  *write(out) {
    out.text('# HELP big x');
    for (let i = 0; i < LINES; i += 1) {
      out.text(`\nbig{n="${i}"} ${i}`);
      if (out.filled) yield;
    }
  },
};
const expected = `# HELP big x${Array.from({ length: LINES }, (_, i) => `\nbig{n="${i}"} ${i}`).join('')}\n`;

/** A server that sends the numbered exposition; each response's outcome is pushed to `outcomes`. */
async function serve(t: { teardown(fn: () => unknown): void }): Promise<{ port: number; outcomes: Promise<string>[] }> {
  const outcomes: Promise<string>[] = [];
  const server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'text/plain' });
    outcomes.push(sendSlices(response, exposition([numbered])).then(() => { response.end(); return 'sent'; }, (err: Error) => { response.destroy(); return err.message; }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port: (server.address() as AddressInfo).port, outcomes };
}

function request(port: number): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => get({ host: '127.0.0.1', port, path: '/metrics' }, resolve).on('error', reject));
}

t.test('a slow reader gets every slice intact: a buffer is reused only once the socket took it', { timeout: 60_000 }, async (t) => {
  const { port, outcomes } = await serve(t);
  const response = await request(port);
  const chunks: Buffer[] = [];
  let reads = 0;
  for await (const chunk of response) {
    chunks.push(chunk as Buffer);
    reads += 1;
    // Stall now and then, so the socket's buffers fill and the server's writes wait.
    if (reads % 20 === 0 && reads <= 200) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  t.equal(Buffer.concat(chunks).toString(), expected);
  t.equal(await outcomes[0], 'sent');
});

t.test('a reader that goes away mid-way ends the sending, and the server goes on serving', { timeout: 60_000 }, async (t) => {
  const { port, outcomes } = await serve(t);
  const response = await request(port);
  await once(response, 'data');
  response.destroy();
  t.equal(await outcomes[0], 'the client closed the connection');
  const again = await request(port);
  const chunks: Buffer[] = [];
  for await (const chunk of again) chunks.push(chunk as Buffer);
  t.equal(Buffer.concat(chunks).toString(), expected, 'the next request gets the whole exposition');
  t.equal(await outcomes[1], 'sent');
});

t.test('a family that fails mid-way cuts the response short and is logged once', { timeout: 60_000 }, async (t) => {
  const captured = capturedLogger('info');
  const app = await buildApp({ config: testConfig({ state: { dir: await tempDir(t) } }), log: captured.log, collectors: [] });
  t.teardown(() => app.fastify.close());
  let failing = false;
  // Registered last, so the families before it are already sent when it fails.
  new Gauge({ name: 'test_last', help: 'Fails to collect when told to.', registers: [app.registry], collect() { if (failing) throw new Error('collect failed'); this.set(1); } });
  await app.fastify.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.fastify.server.address() as AddressInfo;
  const whole = await fetch(`http://127.0.0.1:${port}/metrics`);
  t.match(await whole.text(), /^test_last 1$/m, 'the family renders while it works');
  failing = true;
  // Cut before or after the status line, depending on how much was sent; never a complete body.
  const outcome = await new Promise<string>((resolve) => {
    get({ host: '127.0.0.1', port, path: '/metrics' }, (response) => {
      response.on('end', () => resolve('complete'));
      response.on('error', () => resolve('cut'));
      response.resume();
    }).on('error', () => resolve('cut'));
  });
  t.equal(outcome, 'cut', 'the response is cut short');
  failing = false;
  t.match(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(), /^test_last 1$/m, 'the next scrape is whole');
  t.same(captured.lines().filter((line) => line.level === 50).map(({ msg, err }) => ({ msg, err })), [{ msg: 'the exposition failed mid-way', err: 'collect failed' }]);
});

/** Slices as the renderer hands them: one buffer, written again once the next slice is asked for. */
async function* reusedBuffer(count: number, pulled: { count: number }): AsyncGenerator<Uint8Array> {
  const buffer = Buffer.alloc(1024);
  for (let i = 0; i < count; i += 1) {
    buffer.fill(i % 256);
    pulled.count += 1;
    yield buffer.subarray(0, 100 + i);
  }
}

/** A stream that takes a write only when told to, as gzip does once it has compressed a chunk. */
function heldStream(): { stream: Writable; taken: Buffer[]; release(): void; waiting(): number } {
  const held: (() => void)[] = [];
  const taken: Buffer[] = [];
  const stream = new Writable({
    highWaterMark: 1,
    write(chunk: Buffer, _encoding, callback) {
      held.push(() => { taken.push(Buffer.from(chunk)); callback(); });
    },
  });
  return { stream, taken, release: () => { for (const done of held.splice(0)) done(); }, waiting: () => held.length };
}

t.test('sendCopies: the renderer goes on while the stream works, three copies ahead at most, and every slice arrives as it was', async (t) => {
  const { stream, taken, release, waiting } = heldStream();
  const pulled = { count: 0 };
  const sent = sendCopies(stream, reusedBuffer(10, pulled));
  for (let i = 0; i < 20 && pulled.count < 4; i += 1) await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(waiting(), 1, 'the stream works on one');
  t.equal(stream.writableLength, 100 + 101 + 102, 'three copies handed to the stream before it took any');
  t.equal(pulled.count, 4, 'the fourth slice rendered meanwhile, and waits for a copy to come back');
  while (taken.length < 10) {
    release();
    await new Promise((resolve) => setImmediate(resolve));
  }
  await sent;
  t.same(taken.map((chunk) => [chunk.length, chunk[0], chunk.every((byte) => byte === chunk[0])]), Array.from({ length: 10 }, (_, i) => [100 + i, i, true]),
    'each slice whole, though the renderer wrote the next ones into the same buffer');
});

t.test('sendCopies: a stream closed mid-way (the client gone) rejects with ClientGone; a failing renderer with its own error', async (t) => {
  const { stream } = heldStream();
  const sent = sendCopies(stream, reusedBuffer(10, { count: 0 }));
  await new Promise((resolve) => setImmediate(resolve));
  stream.destroy();
  await t.rejects(sent, ClientGone);

  const failing = async function* (): AsyncGenerator<Uint8Array> {
    yield Buffer.from('a');
    throw new Error('render failed');
  };
  const open = new Writable({ write(_chunk, _encoding, callback) { callback(); } });
  await t.rejects(sendCopies(open, failing()), { message: 'render failed' });
  const erring = new Writable({ write(_chunk, _encoding, callback) { callback(new Error('EPIPE')); } });
  erring.on('error', () => undefined);
  await t.rejects(sendCopies(erring, reusedBuffer(5, { count: 0 })), { name: 'ClientGone', message: 'the client went away: EPIPE' });
});
