import { Writable } from 'node:stream';
import t from 'tap';
import { createLogger, redactUrl } from '../src/log.js';

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
