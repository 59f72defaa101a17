import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import t, { type Test } from 'tap';
import { z } from 'zod';
import { promtoolCheckMetrics } from '../fixtures/promtool.js';
import { asUser, installedPackage, serveInstalled, upkeep, writeConfig, type Served } from './installed.js';

const TOKEN = 'tok-product-7f3a9c';

t.test('the installed package: the bundled dist/ run by plain node, --help and --version', async (t) => {
  const version = await upkeep(['--version']);
  t.equal(version.code, 0);
  const packageJson = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  t.equal(version.stdout, `${packageJson.version}\n`);
  const help = await upkeep(['--help']);
  t.equal(help.code, 0);
  for (const flag of ['--config', '--host', '--port', '--param', '--dry-run', '--once', '--log-level', 'help COMMAND']) t.match(help.stdout, flag);
  for (const command of ['serve', 'check-config', 'run', 'demo']) {
    const one = await upkeep(['help', command]);
    t.equal(one.code, 0, `help ${command}`);
    t.match(one.stdout, '--log-level', `help ${command} lists --log-level`);
  }
  t.equal((await upkeep(['help', 'nope'])).code, 2);
  t.equal((await upkeep(['serve', '--log-level', 'loud', '--config', 'x'])).code, 2);
});

t.test('the installed package: dist/ is self-contained but for pg, ioredis and dockerode, the only production dependencies', async (t) => {
  const root = join(await installedPackage(), 'node_modules', 'upkeep');
  const installedJson = z.object({ dependencies: z.record(z.string(), z.string()) }).parse(JSON.parse(await readFile(join(root, 'package.json'), 'utf8')));
  t.same(Object.keys(installedJson.dependencies).sort(), ['dockerode', 'ioredis', 'pg']);
  const files = (await readdir(join(root, 'dist'))).filter((file) => file.endsWith('.js')).sort();
  // One file per entry point (scripts/build.ts says why).
  t.same(files, ['cli.js', 'executor-worker.js'], 'dist/ holds the CLI and the executor thread\'s entry');
  // Every file of the bundle loaded by plain node in the installed directory: a module the bundle
  // imports but the package does not install fails here, not on a user's machine on first use.
  // The three dependencies are required on first use (src/lazy.ts), from dist/cli.js: each is loaded
  // the same way here.
  const script = `for (const file of ${JSON.stringify(files)}) { try { await import('./dist/' + file); } catch (err) { console.log(file + ': ' + err.message); } }
const { createRequire } = await import('node:module');
const load = createRequire(new URL('./dist/cli.js', 'file://' + process.cwd() + '/'));
for (const name of ['pg', 'ioredis', 'dockerode']) console.log(name + ': ' + typeof load(name));`;
  const user = asUser(process.execPath, ['--input-type=module', '-e', script]);
  const { stdout } = await promisify(execFile)(user.file, user.args, { cwd: root, env: user.env });
  t.equal(stdout, 'executor-worker.js: executor-worker.ts runs as a worker thread (see executor-thread.ts)\npg: object\nioredis: function\ndockerode: function\n',
    'every file loads, the entry of the executor thread refuses to run outside one, and the drivers load from dist/');
});

/** Sends one request and checks the exact status and that the process is still alive. */
async function expectStatus(t: Test, served: Served, method: string, path: string, status: number, body?: unknown, headers: Record<string, string> = {}): Promise<unknown> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers = { 'content-type': 'application/json', ...headers };
  }
  const response = await fetch(`${served.base}${path}`, init);
  const text = await response.text();
  t.equal(response.status, status, `${method} ${path} -> ${status}: ${text.slice(0, 200)}`);
  t.ok(served.alive(), `alive after ${method} ${path}`);
  return response.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text;
}

/** A GET read with node:http, which (unlike fetch) neither asks for gzip nor unzips what comes. */
function rawGet(served: Served, path: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    request(new URL(path, served.base), { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    }).on('error', reject).end();
  });
}

/**
 * A body declared over the limit: upkeep refuses it on its Content-Length, before reading it, and
 * closes the connection (docs/api.md). Only the first bytes are sent, so the reply is read before
 * the close; a client still writing megabytes may see the connection cut instead (EPIPE).
 */
function declaredTooLarge(served: Served, path: string, bytes: number, headers: Record<string, string>): Promise<{ status: number; connection: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, served.base);
    const req = request(url, { method: 'POST', headers: { ...headers, 'content-type': 'application/json', 'content-length': String(bytes) } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body }));
    });
    req.on('error', reject);
    req.write('{"version":"4","pad":"');
  });
}

/** One request sent as raw bytes (fetch cannot give a header twice); the status and body of the reply. */
function rawRequest(served: Served, text: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const socket = connect(served.port, '127.0.0.1');
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => { received += chunk; });
    socket.on('error', reject);
    socket.on('close', () => {
      const match = /^HTTP\/1\.1 (\d{3}) [\s\S]*?\r\n\r\n([\s\S]*)$/.exec(received);
      if (match === null) reject(new Error(`not an HTTP reply: ${received}`));
      else resolve({ status: Number(match[1]), body: JSON.parse(match[2] ?? '') });
    });
    socket.write(text);
  });
}

t.test('the installed serve answers every documented route, valid and invalid, and stays up', async (t) => {
  const scratch = await mkdtemp(join(tmpdir(), 'upkeep-routes-tmp-'));
  t.teardown(() => rm(scratch, { recursive: true, force: true }));
  await writeFile(join(scratch, 'old.tmp'), 'x');
  await utimes(join(scratch, 'old.tmp'), new Date(Date.now() - 7_200_000), new Date(Date.now() - 7_200_000));
  const { file } = await writeConfig(t, {
    server: { host: '127.0.0.1', authToken: TOKEN },
    // check-config refuses a rule naming a directory that is not declared, so declare one (never used: dry run).
    targets: { disks: [{ path: '/' }], files: [{ name: 'tmp', dir: scratch }] },
    remediation: { dryRun: true, rules: [{ match: { alertname: 'DiskUsageHigh' }, remediation: 'files.cleanup', params: { name: 'tmp' } }] },
  });
  const served = await serveInstalled(t, file);
  const auth = { authorization: `Bearer ${TOKEN}` };

  t.match(await expectStatus(t, served, 'GET', '/metrics', 200), /upkeep_build_info\{version="/);
  // Prometheus asks for gzip with every scrape.
  const zipped = await rawGet(served, '/metrics', { 'accept-encoding': 'gzip' });
  t.match(zipped, { status: 200, headers: { 'content-encoding': 'gzip', vary: 'Accept-Encoding' } }, 'gzipped when asked');
  const unzipped = gunzipSync(zipped.body).toString();
  t.match(unzipped, /^upkeep_build_info\{version="[^"]+"\} 1$/m);
  t.same(await promtoolCheckMetrics(unzipped), { code: 0, output: '' }, 'the gzipped exposition, unzipped, passes promtool');
  t.match(await rawGet(served, '/metrics', {}), { status: 200, headers: { 'content-encoding': undefined } }, 'the text as it is when not asked');
  t.same(await expectStatus(t, served, 'GET', '/healthz', 200), { status: 'ok' });
  t.match(await expectStatus(t, served, 'GET', '/readyz', 200), { status: 'ready' });
  t.match(await expectStatus(t, served, 'GET', '/remediations', 200), { remediations: [{ name: 'postgres.vacuum' }] });
  t.match(await expectStatus(t, served, 'GET', '/runs', 200), { runs: [] });
  t.match(await expectStatus(t, served, 'GET', '/runs?limit=0', 400), { error: /limit/ });
  t.match(await expectStatus(t, served, 'GET', '/runs?status=nope', 400), { error: /status/ });
  t.same(await expectStatus(t, served, 'GET', '/runs?status=success&status=failure', 400), { error: 'invalid querystring: "status" is given more than once; give it once' });
  t.match(await expectStatus(t, served, 'GET', '/runs/00000000-0000-0000-0000-000000000000', 404), { error: /no run/ });

  t.match(await expectStatus(t, served, 'POST', '/remediations/postgres.vacuum', 401, { params: {} }), { error: /bearer/ });
  t.match(await expectStatus(t, served, 'POST', '/remediations/postgres.vacuum', 401, { params: {} }, { authorization: 'Bearer wrong' }), { error: /invalid bearer/ });
  t.match(await expectStatus(t, served, 'POST', '/remediations/nope.nope', 404, { params: {} }, auth), { error: /unknown remediation/ });
  t.match(await expectStatus(t, served, 'POST', '/remediations/postgres.vacuum', 400, { params: {} }, auth), { error: /invalid params/ });
  t.match(await expectStatus(t, served, 'POST', '/remediations/postgres.vacuum', 400, '{not json', auth), { error: /JSON|json/ });
  t.same(await expectStatus(t, served, 'POST', '/remediations/postgres.vacuum', 415, 'x=1', { ...auth, 'content-type': 'text/plain' }),
    { error: 'the body has content type "text/plain"; send JSON with Content-Type: application/json' });
  t.same(await expectStatus(t, served, 'DELETE', '/runs', 404, undefined, auth), { error: 'no route DELETE /runs' });
  // What Fastify's router refused in its own shape, echoing the path: upkeep's shape, the token checked first.
  t.same(await expectStatus(t, served, 'GET', '/runs/%ZZ', 400), { error: 'malformed path: a percent-escape in it is not valid, or does not decode to UTF-8' });
  t.same(await expectStatus(t, served, 'POST', '/remediations/%ZZ', 401), { error: 'missing bearer token (Authorization: Bearer TOKEN)' });
  t.same(await expectStatus(t, served, 'GET', `/runs/${'x'.repeat(120)}`, 404), { error: 'no run has an id over 100 characters (a run id is a UUID)' });
  // An empty JSON body is {}.
  const emptyObject = await expectStatus(t, served, 'POST', '/remediations/files.cleanup', 400, {}, auth);
  t.match(emptyObject, { error: /^invalid params: / });
  t.same(await expectStatus(t, served, 'POST', '/remediations/files.cleanup', 400, '', auth), emptyObject);
  // The scheme in any case; Authorization given twice is refused, whichever comes first.
  t.match(await expectStatus(t, served, 'POST', '/remediations/nope.nope', 404, { params: {} }, { authorization: `bearer ${TOKEN}` }), { error: /unknown remediation/ });
  t.same(await rawRequest(served, `POST /alertmanager HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer ${TOKEN}\r\nAuthorization: Bearer other\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`),
    { status: 400, body: { error: 'the request gives the Authorization header twice; give it once' } });
  t.match(await expectStatus(t, served, 'POST', '/alertmanager', 400, { version: '4' }, auth), { error: /invalid body/ });
  const tooLarge = await declaredTooLarge(served, '/alertmanager', 2 * 1024 * 1024, auth);
  t.match(tooLarge, { status: 413, connection: 'close' }, 'refused on its declared length, and the connection closed');
  t.same(JSON.parse(tooLarge.body), { error: 'the body is over 1048576 bytes (server.bodyLimitBytes)' });
  t.ok(served.alive(), 'alive after POST /alertmanager 413');

  t.match(await expectStatus(t, served, 'POST', '/remediations/files.cleanup', 400, { params: { name: 'missing' } }, auth), { error: /unknown directory "missing"/ });
  // A key given twice: JSON.parse alone would have taken the last value, here a real run.
  t.same(await expectStatus(t, served, 'POST', '/remediations/files.cleanup?wait=true', 400, '{"params":{"name":"tmp","olderThanHours":1},"dryRun":true,"dryRun":false}', auth),
    { error: 'the body gives the key "dryRun" twice; give each key once' });
  const accepted = await expectStatus(t, served, 'POST', '/remediations/files.cleanup?wait=true', 200, { params: { name: 'tmp', olderThanHours: 1 }, dryRun: true }, auth);
  t.match(accepted, { status: 'dry_run', trigger: 'manual' });
  const runs = await expectStatus(t, served, 'GET', '/runs?limit=5', 200);
  t.match(runs, { runs: [{ remediation: 'files.cleanup', status: 'dry_run' }] });

  const code = await served.stop();
  t.equal(code, 0, served.output());
  const lines = served.logLines();
  t.same(lines.filter((line) => 'notJson' in line), [], 'every log line is JSON');
  const requests = lines.filter((line) => line.msg === 'request');
  // /metrics, /healthz and /readyz are probes and scrapes: they are not logged.
  t.same(requests.map((line) => `${String(line.method)} ${String(line.path)} ${String(line.status)}`), [
    'GET /remediations 200', 'GET /runs 200', 'GET /runs?limit=*** 400', 'GET /runs?status=*** 400', 'GET /runs?status=***&status=*** 400',
    'GET /runs/00000000-0000-0000-0000-000000000000 404',
    'POST /remediations/postgres.vacuum 401', 'POST /remediations/postgres.vacuum 401', 'POST /remediations/nope.nope 404',
    'POST /remediations/postgres.vacuum 400', 'POST /remediations/postgres.vacuum 400', 'POST /remediations/postgres.vacuum 415', 'DELETE /runs 404',
    'GET /runs/%ZZ 400', 'POST /remediations/%ZZ 401', `GET /runs/${'x'.repeat(120)} 404`, 'POST /remediations/files.cleanup 400', 'POST /remediations/files.cleanup 400',
    'POST /remediations/nope.nope 404', 'POST /alertmanager 400',
    'POST /alertmanager 400', 'POST /alertmanager 413', 'POST /remediations/files.cleanup 400', 'POST /remediations/files.cleanup?wait=*** 400', 'POST /remediations/files.cleanup?wait=*** 200', 'GET /runs?limit=*** 200',
  ]);
  const finished = lines.filter((line) => line.msg === 'run finished');
  t.match(finished, [{ level: 30, remediation: 'files.cleanup', trigger: 'manual', status: 'dry_run', reason: /dry run/ }]);
  t.equal(finished.length, 1, 'one line for the one run; the refused request queued none');
  t.same(await readdir(scratch), ['old.tmp'], 'a dry run deletes nothing');
  t.notMatch(served.output(), TOKEN, 'the token is never logged');
});
