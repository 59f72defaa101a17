import { once } from 'node:events';
import { createServer, get, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { exposition, type FamilyText } from '../../src/collectors/framework/text.js';
import { sendSlices } from '../../src/http/slices.js';

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
