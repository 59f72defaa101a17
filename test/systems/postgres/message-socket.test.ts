import { once } from 'node:events';
import { createServer } from 'node:net';
import t from 'tap';
import { MessageSocket } from '../../../src/systems/postgres/message-socket.js';
import { random } from '../../fixtures/random.js';

/** A protocol message: type byte, 32-bit length counting itself, then `body` bytes of `fill`. */
function message(type: string, body: number, fill: number): Buffer {
  const bytes = Buffer.alloc(5 + body, fill);
  bytes.write(type, 0, 'latin1');
  bytes.writeUInt32BE(4 + body, 1);
  return bytes;
}

/** Whether a chunk is whole messages, and how many. */
function wholeMessages(chunk: Buffer): number | null {
  let at = 0;
  let count = 0;
  while (at < chunk.length) {
    if (at + 5 > chunk.length) return null;
    at += 1 + chunk.readUInt32BE(at + 1);
    count += 1;
  }
  return at === chunk.length ? count : null;
}

/** Pushes `pieces` as reads, then the end, and returns the chunks the socket handed on. */
async function frame(pieces: readonly Buffer[]): Promise<Buffer[]> {
  const socket = new MessageSocket();
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(Buffer.from(chunk)));
  for (const piece of pieces) socket.push(piece);
  socket.push(null);
  await once(socket, 'end');
  socket.destroy();
  return chunks;
}


t.test('reads split anywhere come out as whole messages, every byte in order', async (t) => {
  const next = random(7);
  const messages = Array.from({ length: 400 }, (_, i) => message('D', i % 50 === 0 ? 200_000 : Math.floor(next() * 300), i % 251));
  messages.push(message('Z', 0, 0));
  const stream = Buffer.concat(messages);
  for (const maxRead of [1, 3, 7, 64, 8192, 65_536]) {
    const pieces: Buffer[] = [];
    for (let at = 0; at < stream.length;) {
      const size = 1 + Math.floor(next() * maxRead);
      pieces.push(stream.subarray(at, at + size));
      at += size;
    }
    const chunks = await frame(pieces);
    t.ok(chunks.every((chunk) => wholeMessages(chunk) !== null), `reads of up to ${maxRead} bytes: every chunk is whole messages`);
    t.equal(chunks.reduce((sum, chunk) => sum + (wholeMessages(chunk) ?? 0), 0), messages.length, 'no message lost or doubled');
    t.ok(Buffer.concat(chunks).equals(stream), 'the bytes are unchanged');
  }
});

t.test('a read of whole messages is handed on as it is, not copied', async (t) => {
  const socket = new MessageSocket();
  const read = Buffer.concat([message('D', 10, 1), message('C', 5, 2)]);
  const handed: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => { handed.push(chunk); });
  socket.push(read);
  socket.push(null);
  await once(socket, 'end');
  socket.destroy();
  t.equal(handed.length, 1);
  t.equal(handed[0]?.buffer, read.buffer, 'a view of the same memory');
});

t.test('bytes that are no message (a length under 4) are handed on unframed from there on', async (t) => {
  const bad = Buffer.from([0x44, 0, 0, 0, 1, 9, 9, 9]);
  const after = message('D', 3, 5);
  const chunks = await frame([message('Z', 0, 0), bad.subarray(0, 3), bad.subarray(3), after.subarray(0, 2), after.subarray(2)]);
  t.ok(Buffer.concat(chunks).equals(Buffer.concat([message('Z', 0, 0), bad, after])), 'every byte arrives, in order');
});

t.test('while a sink takes the rows, DataRow messages go to it and every other message to pg, in order', async (t) => {
  const next = random(11);
  const rows = Array.from({ length: 300 }, (_, i) => message('D', i % 40 === 0 ? 70_000 : Math.floor(next() * 200), i % 251));
  const before = [message('T', 30, 1), message('Z', 0, 0)];
  // pg's own messages among the rows: a notice between them, the end after them.
  const others = [message('T', 20, 2), message('N', 12, 3), message('C', 9, 4), message('Z', 0, 0)];
  const stream = Buffer.concat([...before, others[0]!, ...rows.slice(0, 150), others[1]!, ...rows.slice(150), others[2]!, others[3]!]);
  const afterwards = [message('D', 6, 9), message('C', 9, 4), message('Z', 0, 0)];
  for (const maxRead of [1, 7, 8192, 65_536]) {
    const socket = new MessageSocket();
    const chunks: Buffer[] = [];
    const taken: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(Buffer.from(chunk)));
    socket.push(before[0]!);
    socket.push(before[1]!);
    socket.takeRows((bytes, start, end) => taken.push(Buffer.from(bytes.subarray(start, end))));
    for (let at = before[0]!.length + before[1]!.length; at < stream.length;) {
      const size = 1 + Math.floor(next() * maxRead);
      socket.push(stream.subarray(at, Math.min(at + size, stream.length)));
      at += size;
    }
    socket.takeRows(null);
    for (const piece of afterwards) socket.push(piece);
    socket.push(null);
    await once(socket, 'end');
    socket.destroy();
    t.ok(Buffer.concat(taken).equals(Buffer.concat(rows)), `reads of up to ${maxRead} bytes: the sink took every row, whole and in order`);
    t.equal(taken.length, rows.length, 'one call per row');
    t.ok(Buffer.concat(chunks).equals(Buffer.concat([...before, ...others, ...afterwards])), 'pg got every other message in order, and the rows again once the sink was gone');
  }
});

t.test('over TCP, reads land in the shared buffer: two sockets at once, a slow reader, a sink, every byte intact', async (t) => {
  const next = random(23);
  const rows = Array.from({ length: 500 }, (_, i) => message('D', i % 60 === 0 ? 100_000 : Math.floor(next() * 400), i % 251));
  const others = [message('T', 40, 1), message('N', 12, 3), message('C', 9, 4), message('Z', 0, 0)];
  const stream = Buffer.concat([others[0]!, ...rows.slice(0, 250), others[1]!, ...rows.slice(250), others[2]!, others[3]!]);
  const server = createServer((socket) => {
    // Uneven writes, so reads end anywhere in a message.
    const pieces: Buffer[] = [];
    for (let at = 0; at < stream.length;) {
      const size = 1 + Math.floor(next() * 90_000);
      pieces.push(stream.subarray(at, at + size));
      at += size;
    }
    for (const piece of pieces) socket.write(piece);
    socket.end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const receive = async (sink: boolean) => {
    const socket = new MessageSocket();
    const taken: Buffer[] = [];
    if (sink) socket.takeRows((bytes, start, end) => taken.push(Buffer.from(bytes.subarray(start, end))));
    const chunks: Buffer[] = [];
    // pg's side stops taking chunks after the first for a while: what it was handed must not
    // change while it waits, and the socket stops reading (the rest waits in the kernel, not here).
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (chunks.length > 1) return;
      socket.pause();
      setTimeout(() => {
        held.push(socket.readableLength);
        socket.resume();
      }, 200);
    });
    socket.connect(port, '127.0.0.1');
    await once(socket, 'end');
    socket.destroy();
    return { chunks, taken };
  };
  const held: number[] = [];
  const [plain, sunk] = await Promise.all([receive(false), receive(true)]);
  t.ok(held.every((bytes) => bytes < stream.length / 4), `a paused reader holds little of the ${stream.length} bytes: ${held.join(', ')}`);
  t.ok(Buffer.concat(plain.chunks).equals(stream), 'without a sink: every byte, in order');
  t.ok(plain.chunks.every((chunk) => wholeMessages(chunk) !== null), 'in whole messages');
  t.ok(Buffer.concat(sunk.taken).equals(Buffer.concat(rows)), 'with a sink: it took every row');
  t.ok(Buffer.concat(sunk.chunks).equals(Buffer.concat(others)), 'and pg every other message');
});
