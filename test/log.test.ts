import { Writable } from 'node:stream';
import t from 'tap';
import { createServer } from 'node:http';
import { hostname } from 'node:os';
import { createLogger, errorMessage, loggedPath, redactText, redactUrl } from '../src/log.js';

function captured() {
  const lines: string[] = [];
  const destination = new Writable({ write(chunk: Buffer, _encoding, done) { lines.push(chunk.toString()); done(); } });
  return { lines, log: createLogger({ destination }) };
}

t.test('passwords in URLs are masked', async (t) => {
  t.equal(redactUrl('postgres://app:hunter2@db:5432/refnet'), 'postgres://app:***@db:5432/refnet');
  t.equal(redactUrl('redis://:s3cret@127.0.0.1:6379 and rediss://user:pw@h/0'), 'redis://:***@127.0.0.1:6379 and rediss://user:***@h/0');
  t.equal(redactUrl('http://example/health'), 'http://example/health');
});

t.test('secrets never reach the log output', async (t) => {
  const { lines, log } = captured();
  log.info({ authToken: 'tok-123', target: { url: 'postgres://u:pw-456@h/db', password: 'pw-789' }, headers: { authorization: 'Bearer tok-123' } }, 'connecting');
  log.error({ err: new Error('connect to redis://:pw-000@127.0.0.1:1 failed') }, 'failed');
  const text = lines.join('');
  for (const secret of ['tok-123', 'pw-456', 'pw-789', 'pw-000']) t.notMatch(text, secret, `${secret} is redacted`);
  t.match(text, 'postgres://u:***@h/db');
  t.match(text, '"msg":"failed"');
  t.match(text, 'connect to redis://:***@127.0.0.1:1 failed', 'the error message is kept, redacted');
  t.match(text, '"type":"Error"');
  t.match(text, '"stack":"Error: connect to redis://:***@');
});

t.test('logging a socket, a request or a cycle cannot crash the process', async (t) => {
  const { lines, log } = captured();
  const server = createServer((request, response) => {
    log.info({ req: request, res: response, socket: request.socket }, 'raw objects');
    response.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const reply = await fetch(`http://127.0.0.1:${address.port}/x?password=hunter2`);
  t.equal(await reply.text(), 'ok');
  const cyclic: Record<string, unknown> = { name: 'loop' };
  cyclic.self = cyclic;
  log.info({ cyclic }, 'cycle');
  const [raw, cycle] = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  t.same(raw, { level: 30, time: raw?.time, pid: process.pid, hostname: hostname(), req: '[IncomingMessage]', res: '[ServerResponse]', socket: '[Socket]', msg: 'raw objects' });
  t.same(cycle?.cyclic, { name: 'loop', self: '[…]' });
});

t.test('a redis error never logs the command arguments (AUTH user password)', async (t) => {
  const { lines, log } = captured();
  const err = Object.assign(new Error('WRONGPASS invalid username-password pair or user is disabled.'), {
    command: { name: 'auth', args: ['upkeep', 'pw-redis-1'] }, args: ['pw-redis-2'],
  });
  log.error({ err }, 'redis failed');
  const text = lines.join('');
  t.notMatch(text, 'pw-redis-1');
  t.notMatch(text, 'pw-redis-2');
  t.match(JSON.parse(text), { err: { type: 'Error', message: 'WRONGPASS invalid username-password pair or user is disabled.', command: 'auth' } });
});

t.test('a ?password= query parameter and the request path query are masked', async (t) => {
  t.equal(redactUrl('postgres://app@db/refnet?sslmode=disable&password=hunter2'), 'postgres://app@db/refnet?sslmode=disable&password=***');
  t.equal(loggedPath('/runs?limit=5&cursor=abc'), '/runs?limit=***&cursor=***');
  t.equal(loggedPath('/runs'), '/runs');
});

t.test('free text and error messages: URLs and Redis command arguments are masked', async (t) => {
  // What Redis 5 answers ioredis's HELLO 3 AUTH user password: the arguments come back in the message.
  const reply = "ERR unknown command 'HELLO', with args beginning with: '3' 'AUTH' 'upkeep' 'pw-redis-3' ";
  t.equal(redactText(reply), "ERR unknown command 'HELLO', with args beginning with: ***");
  t.equal(redactText('connect to postgres://u:pw-4@h/db?password=pw-5 failed'), 'connect to postgres://u:***@h/db?password=*** failed');
  t.equal(errorMessage(new Error(reply)), "ERR unknown command 'HELLO', with args beginning with: ***");
  t.equal(errorMessage('redis://:pw-6@h:1 refused'), 'redis://:***@h:1 refused');
  const { lines, log } = captured();
  const invalidUrl = Object.assign(new TypeError('Invalid URL'), { code: 'ERR_INVALID_URL', input: 'postgres://u:pw 7@h:99999/db' });
  log.error({ err: invalidUrl, detail: reply }, 'failed');
  const text = lines.join('');
  for (const secret of ['pw-redis-3', 'pw 7']) t.notMatch(text, secret, `${secret} is not logged`);
  t.match(JSON.parse(text), { err: { type: 'TypeError', message: 'Invalid URL', code: 'ERR_INVALID_URL' }, detail: "ERR unknown command 'HELLO', with args beginning with: ***" });
});
