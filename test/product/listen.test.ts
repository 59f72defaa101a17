import { createServer } from 'node:net';
import { once } from 'node:events';
import t from 'tap';
import { serveInstalled, upkeep, writeConfig } from './installed.js';

/**
 * `upkeep serve` on a port another process holds: before, node printed the listen exception's
 * stack and "Node.js v20..." and exited 1. Now one line says which address and what to do, the
 * app it built (journal, engine, collectors) is closed, and the same config serves on a free port.
 */
t.test('upkeep serve and upkeep demo on a port in use exit 1 with one line naming it; the state stays usable', async (t) => {
  const holder = createServer();
  holder.listen(0, '127.0.0.1');
  await once(holder, 'listening');
  t.teardown(() => holder.close());
  const address = holder.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const { file } = await writeConfig(t, { targets: { disks: [{ path: '/' }] } });
  const taken = await upkeep(['serve', '--config', file, '--port', String(address.port)], { timeoutMs: 30_000 });
  t.same([taken.code, taken.stderr], [1, `cannot listen on 127.0.0.1:${address.port}: the port is in use (another upkeep?); stop what holds it, or choose another port with --port or server.port\n`]);
  const lines = taken.stdout.split('\n').filter((line) => line !== '');
  t.same(lines.filter((line) => !line.startsWith('{')), [], 'stdout holds only log lines: no stack');
  t.same(lines.map((line) => JSON.parse(line) as { level: number }).filter((line) => line.level >= 40), [], 'nothing logged as a warning or an error');

  // The demo checks its --port before it starts PostgreSQL, Redis, Prometheus and Alertmanager.
  const demo = await upkeep(['demo', '--once', '--port', String(address.port)], { timeoutMs: 30_000 });
  t.same([demo.code, demo.stderr], [1, `cannot listen on 127.0.0.1:${address.port}: the port is in use (another upkeep?); stop what holds it, or choose another port with --port or server.port\n`], 'upkeep demo --port: the same line, before starting anything');
  t.equal(demo.stdout, '', 'no server was started');
  const badPort = await upkeep(['demo', '--once', '--port', 'abc'], { timeoutMs: 30_000 });
  t.same([badPort.code, badPort.stdout, badPort.stderr], [2, '', '--port must be a port number, got "abc"\n'], 'before, a port that is not a number meant a free one');

  const served = await serveInstalled(t, file);
  t.equal((await fetch(`${served.base}/readyz`)).status, 200, 'the same config and state serve on a free port');
  t.equal(await served.stop(), 0);
});
