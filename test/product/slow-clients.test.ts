import { once } from 'node:events';
import t from 'tap';
import { parseResponse, postHead, slowClient, type SlowClient } from '../fixtures/slow-client.js';
import { serveInstalled, writeConfig } from './installed.js';

const TOKEN = 'tok-slowloris-93ad1c';
// A body the clients would take 10,000 s to send at one byte every 100 ms: only the server ends it.
const BODY = 'x'.repeat(100_000);

/** Opens `count` slow clients, a few at a time so the listen backlog never overflows. */
async function openSlowClients(count: number, open: () => SlowClient): Promise<SlowClient[]> {
  const clients: SlowClient[] = [];
  for (let index = 0; index < count; index += 1) {
    const client = open();
    clients.push(client);
    if (index % 100 === 99) await once(client.socket, 'connect').catch(() => undefined);
  }
  return clients;
}

t.test('the installed serve closes 1,000 slow-body sockets without a token, and cuts trickled bodies at the request timeout', async (t) => {
  const { file } = await writeConfig(t, {
    server: { authToken: TOKEN, headersTimeoutSeconds: 1, requestTimeoutSeconds: 2, idleTimeoutSeconds: 1 },
  });
  const served = await serveInstalled(t, file);
  const withoutToken = await openSlowClients(1000, () => slowClient(served.port, { head: postHead('/alertmanager', BODY.length), trickle: BODY }));
  const withToken = await openSlowClients(50, () => slowClient(served.port, { head: postHead('/alertmanager', BODY.length, { authorization: `Bearer ${TOKEN}` }), trickle: BODY }));
  await Promise.all([...withoutToken, ...withToken].map((client) => client.closed));

  t.equal(withoutToken.filter((client) => client.cutWhileSending()).length, 1000, 'every one was closed while its client was still sending');
  // Closing a socket with unread bytes in it sends a reset, which may overtake the 401 on its way
  // to a client still writing; what a client did receive is always the 401.
  const replies = withoutToken.map((client) => parseResponse(client.response())).filter((reply) => reply !== null);
  t.same(replies.filter((reply) => reply.status !== 401 || !reply.headers.includes('connection: close')), [], 'every reply received is a 401 that closes the connection');
  t.ok(replies.length > 0);
  t.comment(`${replies.length} of 1000 clients read their 401 before the connection closed`);
  t.equal(withToken.filter((client) => client.cutWhileSending()).length, 50, 'a trickled body with the right token is cut off too');
  const timedOut = withToken.map((client) => parseResponse(client.response())).filter((reply) => reply !== null);
  const expected = { error: 'the request did not arrive in time: headers within 1s (server.headersTimeoutSeconds), the whole request within 2s (server.requestTimeoutSeconds)' };
  t.same(timedOut.filter((reply) => reply.status !== 408 || JSON.stringify(JSON.parse(reply.body)) !== JSON.stringify(expected)), [], 'every reply received is the 408 naming the limits');
  t.ok(timedOut.length > 0);
  t.comment(`${timedOut.length} of 50 clients read their 408 before the connection closed`);

  t.ok(served.alive(), 'upkeep is alive');
  t.equal((await fetch(`${served.base}/healthz`)).status, 200);
  t.equal(await served.stop(), 0);
  const lines = served.logLines();
  t.same(lines.filter((line) => 'notJson' in line), [], 'every log line is JSON');
  t.equal(lines.filter((line) => line.msg === 'request' && line.status === 401 && line.path === '/alertmanager').length, 1000, 'one request line per refused POST');
  t.equal(lines.filter((line) => line.msg === 'connection refused' && line.status === 408).length, 50, 'one line per timed-out request');
  t.notMatch(served.output(), TOKEN);
});

t.test('SIGTERM with slow sockets open: the installed serve exits 1 at server.shutdownTimeoutSeconds', async (t) => {
  const { file } = await writeConfig(t, {
    server: { authToken: TOKEN, shutdownTimeoutSeconds: 1, headersTimeoutSeconds: 60, requestTimeoutSeconds: 600, idleTimeoutSeconds: 600 },
  });
  const served = await serveInstalled(t, file);
  const clients = await openSlowClients(20, () => slowClient(served.port, { head: postHead('/alertmanager', BODY.length, { authorization: `Bearer ${TOKEN}` }), trickle: BODY }));
  await Promise.all(clients.map((client) => once(client.socket, 'connect')));
  // Answered after every slow request's head was read: all of them are in flight when the signal comes.
  t.equal((await fetch(`${served.base}/healthz`)).status, 200);
  const exited = once(served.child, 'exit');
  served.child.kill('SIGTERM');
  const [code] = await exited;
  t.equal(code, 1, 'the deadline passed, so the exit code says so');
  await Promise.all(clients.map((client) => client.closed));
  t.equal(clients.filter((client) => client.cutWhileSending()).length, 20, 'every slow client was cut off');
  const messages = served.logLines().map((line) => line.msg);
  // A slow request whose head was read after the signal was refused by Fastify (503), and logged.
  const shutdown = messages.indexOf('shutting down');
  t.ok(shutdown >= 0, 'the signal was logged');
  t.same(messages.slice(shutdown).filter((msg) => msg !== 'request aborted - refusing to accept new requests as server is closing'),
    ['shutting down', 'shutdown deadline passed; closed every connection, exiting']);
});
