import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { freePort, waitFor } from './fixtures/ports.js';
import { promtoolCheckMetrics } from './fixtures/promtool.js';
import { postHead, slowClient } from './fixtures/slow-client.js';
import { tempDir } from './http/helpers.js';

/** Starts `upkeep serve` as a real process, the way an operator would. */
function serve(args: string[], env: Record<string, string> = {}, outsideTap = false): { child: ChildProcess; output: () => string } {
  const command = [process.execPath, 'bin/upkeep.js', 'serve', ...args];
  // tap injects its loaders into every child's NODE_OPTIONS; `env -u` takes them out again, so
  // this process runs as a user's would (through tsx) and reports no coverage to merge.
  const [file, ...rest] = outsideTap ? ['env', '-u', 'NODE_OPTIONS', '-u', 'TAP', ...command] : command;
  const child = spawn(file!, rest, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  child.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  return { child, output: () => output };
}

/** Kills a child that is still running and waits for it to exit, so its directory can be removed after. */
async function kill(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

t.test('upkeep serve --config examples/minimal.yml serves metrics that promtool accepts', async (t) => {
  const port = await freePort();
  const logs = await tempDir(t, 'upkeep-logs-');
  await writeFile(join(logs, 'app.log'), 'line\n');
  const { child, output } = serve(['--config', 'examples/minimal.yml', '--port', String(port)], { UPKEEP_LOG_DIR: logs });
  t.teardown(() => kill(child));
  const body = await waitFor('upkeep to serve', async () => {
    const response = await fetch(`http://127.0.0.1:${port}/metrics`);
    if (response.status !== 200) throw new Error(`status ${response.status}`);
    return response.text();
  });
  t.match(body, /upkeep_disk_used_ratio\{path="\/"\} 0\.\d+/);
  t.match(body, /upkeep_log_files\{name="system"\} 1\n/);
  t.match(body, /upkeep_build_info\{version="\d+\.\d+\.\d+"\} 1/);
  const lint = await promtoolCheckMetrics(body);
  t.equal(lint.output, '', 'promtool check metrics reports nothing');
  t.equal(lint.code, 0);
  t.same(await (await fetch(`http://127.0.0.1:${port}/healthz`)).json(), { status: 'ok' });
  child.kill('SIGTERM');
  const [code] = await once(child, 'exit');
  t.equal(code, 0, output());
});

t.test('SIGTERM during a slow scrape: the scrape completes, then the process exits 0', async (t) => {
  const sockets = new Set<Socket>();
  const hole = createServer((socket) => { sockets.add(socket); });
  const holePort = await freePort();
  await new Promise<void>((resolve) => hole.listen(holePort, '127.0.0.1', resolve));
  t.teardown(() => { for (const s of sockets) s.destroy(); hole.close(); });
  const dir = await tempDir(t, 'upkeep-serve-');
  const config = join(dir, 'upkeep.yml');
  await writeFile(config, `collectors: { timeoutSeconds: 2 }\ntargets:\n  disks: [{ path: / }]\n  http: [{ name: slow, url: "http://127.0.0.1:${holePort}/" }]\n`);
  const port = await freePort();
  const { child, output } = serve(['--config', config, '--port', String(port)]);
  t.teardown(() => kill(child));
  await waitFor('upkeep to listen', async () => { await fetch(`http://127.0.0.1:${port}/healthz`); });

  const exited = once(child, 'exit');
  const scrape = fetch(`http://127.0.0.1:${port}/metrics`).then(async (r) => ({ status: r.status, body: await r.text() }));
  // The scrape is now waiting on the black hole; the collector timeout (2 s) ends it.
  await waitFor('the slow probe to connect', async () => { if (sockets.size === 0) throw new Error('not yet'); });
  child.kill('SIGTERM');
  const result = await scrape;
  t.equal(result.status, 200, 'the in-flight scrape was finished, not cut');
  t.match(result.body, 'upkeep_http_up{service="slow"} 0');
  const exitDeadline = new Promise<string>((resolve) => setTimeout(() => resolve('still running 5 s after the scrape'), 5000).unref());
  const outcome = await Promise.race([exited.then(([code]) => `exit ${String(code)}`), exitDeadline]);
  t.equal(outcome, 'exit 0', output());
  t.match(output(), '"msg":"shutting down"');
  await t.rejects(fetch(`http://127.0.0.1:${port}/healthz`), 'no longer accepting');
});

t.test('a bad --port or config file is an error, not a crash', async (t) => {
  const bad = serve(['--config', 'examples/minimal.yml', '--port', 'http'], {}, true);
  const [code] = await once(bad.child, 'exit');
  t.equal(code, 2);
  t.match(bad.output(), '--port must be a port number');
  const missing = serve(['--config', '/nonexistent.yml']);
  const [missingCode] = await once(missing.child, 'exit');
  t.equal(missingCode, 1);
  t.match(missing.output(), '/nonexistent.yml: 1 config error(s)');
});

t.test('SIGTERM while a client is still sending: at server.shutdownTimeoutSeconds every connection is closed and the process exits 1', async (t) => {
  const dir = await tempDir(t, 'upkeep-serve-');
  const config = join(dir, 'upkeep.yml');
  await writeFile(config, `state: { dir: ${JSON.stringify(join(dir, 'state'))} }\nserver: { shutdownTimeoutSeconds: 1, requestTimeoutSeconds: 600, idleTimeoutSeconds: 600 }\n`);
  const port = await freePort();
  const { child, output } = serve(['--config', config, '--port', String(port)]);
  t.teardown(() => kill(child));
  await waitFor('upkeep to listen', async () => { await fetch(`http://127.0.0.1:${port}/healthz`); });
  const body = 'x'.repeat(10_000);
  const client = slowClient(port, { head: postHead('/alertmanager', body.length), trickle: body });
  // Answered after the slow request's head was read: that request is in flight when the signal comes.
  await fetch(`http://127.0.0.1:${port}/healthz`);
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const [code] = await exited;
  t.equal(code, 1, output());
  await client.closed;
  t.ok(client.cutWhileSending(), 'the slow client was cut off');
  t.match(output(), '"msg":"shutdown deadline passed; closed every connection, exiting"');
  t.notMatch(output(), '"msg":"stopped"');
});
