import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { z } from 'zod';
import { freePort, waitFor } from '../fixtures/ports.js';
import { PG_BIN, startPostgres } from '../fixtures/postgres.js';
import { promtoolCheckMetrics } from '../fixtures/promtool.js';
import { baseImage } from './base-image.js';
import { docBlocks, Substitutions } from './doc-steps.js';
import { bash, cachedImageStages, command, docker, ROOT, type ScriptResult } from './docker.js';

/**
 * docs/deploy.md's container steps, run as written on this machine: build the Dockerfile on the
 * locally made base image, write the config and secrets, check the config, run the container
 * against a real PostgreSQL, take a backup through the API, and upgrade. The doc's values that
 * differ here are swapped for exact strings (Substitutions), which must all still be in the doc.
 */
const run = promisify(execFile);
const ID = `${process.pid}`;
const IMAGE = `upkeep-test-image:${ID}`;
const NAME = `upkeep-test-${ID}`;
const BUILD_STAGE = `upkeep-test-build:${ID}`;

const inspectImage = z.array(z.object({
  Config: z.object({
    User: z.string(),
    Entrypoint: z.array(z.string()),
    Cmd: z.array(z.string()),
    WorkingDir: z.string(),
    Volumes: z.record(z.string(), z.unknown()),
    ExposedPorts: z.record(z.string(), z.unknown()),
    Healthcheck: z.object({ Test: z.array(z.string()) }),
  }),
})).length(1);
const runsReply = z.object({ runs: z.array(z.object({ id: z.string(), remediation: z.string(), status: z.string() })) });

function phase(t: Test, name: string, started: number): void {
  t.comment(`${name}: ${Math.round((Date.now() - started) / 1000)} s`);
}

function ok(t: Test, result: ScriptResult, what: string): void {
  t.equal(result.code, 0, `${what} exits 0${result.code === 0 ? '' : `\n${result.stdout}\n${result.stderr}`}`);
}

t.test('docs/deploy.md, container: build, configure, run, back up through the API, upgrade', async (t) => {
  const pg = await startPostgres();
  t.teardown(() => pg.destroy());
  await pg.query("CREATE ROLE upkeep LOGIN PASSWORD 'the password of the role upkeep' IN ROLE pg_monitor, pg_read_all_data");
  await pg.query('CREATE DATABASE app');
  await pg.query('CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL); INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 500) g', [], 'app');

  const dir = await mkdtemp(join(tmpdir(), 'upkeep-container-'));
  const etc = join(dir, 'etc');
  const backups = join(dir, 'backups');
  const port = await freePort();
  t.teardown(async () => {
    await docker(['rm', '--force', NAME]).catch(() => undefined);
    await docker(['volume', 'rm', `${NAME}-state`]).catch(() => undefined);
    await docker(['image', 'rm', IMAGE, BUILD_STAGE]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  let started = Date.now();
  const base = await baseImage();
  phase(t, `base image ${base}`, started);
  // The stages that change rarely keep a tag between runs; the build stage of this run is removed.
  started = Date.now();
  await cachedImageStages(base);
  phase(t, 'cached stages (apt, npm ci)', started);
  started = Date.now();
  await docker(['build', '--network', 'host', '--build-arg', `BASE_IMAGE=${base}`, '--target', 'build', '-t', BUILD_STAGE, '.']);
  phase(t, 'build stage (npm pack, install)', started);

  const url = `http://127.0.0.1:${port}`;
  const substitutions = new Substitutions([
    ['IMAGE=upkeep:0.1.0', `IMAGE=${IMAGE}`],
    ['NAME=upkeep ', `NAME=${NAME} `],
    ['ETC=/etc/upkeep ', `ETC=${etc} `],
    ['BACKUPS=/var/backups/upkeep ', `BACKUPS=${backups} `],
    // No image registry here: the base is the local one, and the build reaches npm and apt through the host's network.
    ['docker build -t "$IMAGE" .', `docker build --network host --build-arg BASE_IMAGE=${base} -t "$IMAGE" .`],
    ['db.example.internal:5432', `127.0.0.1:${pg.port}`],
    // dockerd runs without a bridge network here: the host's network, on a free port.
    ['port: 9630', `port: ${port}`],
    ['--publish 127.0.0.1:9630:9630', `--network host --env UPKEEP_HEALTHCHECK_URL=${url}/healthz`],
    ['http://127.0.0.1:9630/', `${url}/`],
  ]);
  const blocks = (await docBlocks('container')).map((block) => substitutions.apply(block));
  t.equal(blocks.length, 7, 'variables, build, config, check, run, use, upgrade');
  const [variables = '', build = '', configure = '', check = '', start = '', use = '', upgrade = ''] = blocks;
  const step = (block: string) => bash(`${variables}\n${block}`);

  started = Date.now();
  ok(t, await step(build), 'docker build');
  phase(t, 'docker build (as the doc says)', started);
  const [image] = inspectImage.parse(JSON.parse(await docker(['image', 'inspect', IMAGE])));
  t.match(image?.Config, {
    User: '10001:10001',
    Entrypoint: ['upkeep'],
    Cmd: ['serve', '--config', '/etc/upkeep/upkeep.yml'],
    WorkingDir: '/var/lib/upkeep',
    Volumes: { '/var/lib/upkeep': {} },
    ExposedPorts: { '9630/tcp': {} },
    Healthcheck: { Test: ['CMD', 'node', '-e', /UPKEEP_HEALTHCHECK_URL.*127\.0\.0\.1:9630\/healthz/] },
  });
  const contents = await docker(['run', '--rm', '--network', 'none', '--entrypoint', 'sh', IMAGE, '-c',
    'id -u; upkeep --version; pg_dump --version; gzip --version | head -n 1; cd /opt/upkeep/lib/node_modules/upkeep && ls && ls node_modules']);
  const [uid, version, pgDump, gzip, ...listing] = contents.trim().split('\n');
  const packageJson = z.object({ version: z.string(), dependencies: z.record(z.string(), z.string()), devDependencies: z.record(z.string(), z.string()) })
    .parse(JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')));
  t.equal(uid, '10001', 'the image runs as uid 10001');
  t.equal(version, packageJson.version);
  t.match(pgDump, /^pg_dump \(PostgreSQL\) 15\./);
  t.match(gzip, /^gzip /);
  t.ok(listing.includes('dist') && !listing.includes('src'), 'the compiled package, no sources');
  for (const name of Object.keys(packageJson.dependencies)) t.ok(listing.includes(name), `production dependency ${name}`);
  for (const name of ['tap', 'typescript', 'tsx']) t.notOk(listing.includes(name), `no dev dependency ${name}`);

  ok(t, await step(configure), 'config and secrets');
  const secret = await stat(join(etc, 'secrets', 'token'));
  t.same([secret.uid, secret.mode & 0o777], [10001, 0o600], 'the token is readable by the image user only');
  const checked = await step(check);
  ok(t, checked, 'check-config in the image');
  t.match(checked.stdout, /^config OK\n/i);

  ok(t, await step(start), 'docker run');
  await waitFor('the container to answer /healthz', async () => {
    const response = await fetch(`${url}/healthz`);
    if (!response.ok) throw new Error(`status ${response.status}`);
  }, 60_000, 250);

  const used = await step(use);
  ok(t, used, 'readyz, a backup through the API, the logs');
  t.match(used.stdout, /"status":"success"/, 'the backup run succeeded');
  const files = (await readdir(backups)).filter((name) => name.endsWith('.sql.gz'));
  t.equal(files.length, 1, `one backup on the volume: ${files.join(', ')}`);
  const file = join(backups, files[0] ?? '');
  t.match(files[0], /^app_\d{8}_\d{6}\.sql\.gz$/);
  t.equal((await stat(file)).uid, 10001, 'written by the image user');
  await run('gzip', ['-t', file]);
  await pg.query('CREATE DATABASE restored');
  const restore = await bash(`gunzip -c '${file}' | '${PG_BIN}/psql' -v ON_ERROR_STOP=1 -q -h 127.0.0.1 -p ${pg.port} -U postgres -d restored`);
  ok(t, restore, 'the dump restores');
  t.same(await pg.query('SELECT count(*)::int AS n, sum(id)::int AS s FROM orders', [], 'restored'), [{ n: 500, s: 125250 }], 'with every row');

  const metrics = await (await fetch(`${url}/metrics`)).text();
  const promtool = await promtoolCheckMetrics(metrics);
  t.same([promtool.code, promtool.output], [0, ''], 'promtool check metrics finds nothing');
  t.match(metrics, /^upkeep_postgres_up\{target="main"\} 1$/m);
  t.match(metrics, /^upkeep_backup_last_success_timestamp_seconds\{backup="app"\} \d/m);

  t.equal((await docker(['exec', NAME, 'id', '-u'])).trim(), '10001', 'the container runs as non-root');
  const healthcheck = image?.Config.Healthcheck.Test.slice(1) ?? [];
  t.equal((await command(['docker', 'exec', NAME, ...healthcheck])).code, 0, 'the HEALTHCHECK command passes');
  const closed = await freePort();
  t.equal((await command(['docker', 'exec', '--env', `UPKEEP_HEALTHCHECK_URL=http://127.0.0.1:${closed}/healthz`, NAME, ...healthcheck])).code, 1, 'and fails when nothing answers');
  t.match((await command(['docker', 'exec', NAME, 'touch', '/opt/upkeep/x'])).stderr, /Read-only file system/, 'the root file system is read-only');
  const token = (await readFile(join(etc, 'secrets', 'token'), 'utf8')).trim();
  const logs = await command(['docker', 'logs', NAME]);
  const lines = `${logs.stdout}${logs.stderr}`.split('\n').filter((line) => line !== '');
  t.ok(lines.length > 0);
  t.same(lines.filter((line) => !line.startsWith('{')), [], 'every log line is JSON');
  t.notOk(lines.some((line) => line.includes(token)), 'the token is never logged');
  const before = runsReply.parse(await (await fetch(`${url}/runs`)).json()).runs;
  t.match(before, [{ remediation: 'backup.pg_dump', status: 'success' }]);

  started = Date.now();
  ok(t, await step(upgrade), 'upgrade: rebuild, stop, remove');
  t.equal((await command(['docker', 'container', 'inspect', NAME])).code, 1, 'the old container is gone');
  ok(t, await step(start), 'the same docker run');
  await waitFor('the upgraded container to answer /healthz', async () => {
    const response = await fetch(`${url}/healthz`);
    if (!response.ok) throw new Error(`status ${response.status}`);
  }, 60_000, 250);
  phase(t, 'upgrade', started);
  t.same(runsReply.parse(await (await fetch(`${url}/runs`)).json()).runs.map((one) => one.id), before.map((one) => one.id), 'the journal survived on the state volume');
  t.same(substitutions.missing(), [], 'every value the test changes is still in the doc');
});
