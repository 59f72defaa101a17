import { once } from 'node:events';
import { createServer, get, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { exposition, type FamilyText } from '../../src/collectors/framework/text.js';
import { sendSlices } from '../../src/http/slices.js';
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
