import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { DOCKER_SOCKET, ensureDocker, ensureTestImage, runContainer } from '../fixtures/docker.js';
import { startPostgres, type PostgresServer } from '../fixtures/postgres.js';
import { startRedis } from '../fixtures/redis.js';
import { serveInstalled, upkeep, writeConfig } from './installed.js';

const TOKEN = 'tok-remediations-5d1e07';
const REDIS_PASSWORD = 'pw-redis-product-83b1';
const DAY_SECONDS = 86_400;
const LABEL_KEY = 'upkeep.product.test';

/** The problems each remediation fixes, made again before each pass (the API pass, then the CLI pass). */
async function makeProblems(postgres: PostgresServer, dirs: { logs: string; scratch: string }, pass: number): Promise<void> {
  await postgres.query('insert into orders select g + $1, md5(g::text) from generate_series(1, 20000) g', [pass * 100_000], 'refnet');
  await postgres.query('delete from orders where id % 2 = 0', [], 'refnet');
  await postgres.query("insert into job_logs select g + $1, now() - interval '40 days' from generate_series(1, 300) g", [pass * 1000], 'refnet');
  const old = async (path: string, ageDays: number) => {
    await writeFile(path, 'line\n'.repeat(100));
    const at = Date.now() / 1000 - ageDays * DAY_SECONDS;
    await utimes(path, at, at);
  };
  await old(join(dirs.logs, `refnet_${pass}.log`), 2);
  await old(join(dirs.scratch, `upload_${pass}.tmp`), 2);
}

/** Every remediation, with the params an operator would give it. */
function everyRemediation(label: string): { name: string; params: Record<string, string | boolean | number> }[] {
  return [
    { name: 'postgres.vacuum', params: { target: 'main', database: 'refnet', table: 'public.orders' } },
    { name: 'postgres.analyze', params: { target: 'main', database: 'refnet', table: 'orders' } },
    { name: 'postgres.reindex', params: { target: 'main', database: 'refnet', table: 'orders' } },
    { name: 'postgres.retention', params: { policy: 'job_logs' } },
    { name: 'redis.bgsave', params: { target: 'cache' } },
    { name: 'redis.memory_purge', params: { target: 'cache' } },
    { name: 'redis.expire_keys', params: { target: 'cache', pattern: 'celery-task-meta-*' } },
    { name: 'docker.prune', params: { target: 'local', label, images: false, networks: false, buildCache: false } },
    { name: 'logs.rotate', params: { name: 'refnet', compressAfterDays: 1, deleteAfterDays: 30 } },
    { name: 'files.cleanup', params: { name: 'api-tmp', olderThanHours: 24 } },
    { name: 'backup.pg_dump', params: { backup: 'refnet' } },
    { name: 'backup.verify', params: { backup: 'refnet' } },
  ];
}

t.test('every remediation runs once through the API and once through `upkeep run`, on the installed package', async (t) => {
  const postgres = await startPostgres();
  t.teardown(() => postgres.destroy());
  await postgres.query('create database refnet');
  await postgres.query('create table orders (id int primary key, note text)', [], 'refnet');
  await postgres.query('create table job_logs (id int primary key, created_at timestamptz not null)', [], 'refnet');
  await postgres.query('alter table orders set (autovacuum_enabled = false)', [], 'refnet');
  const redis = await startRedis({ password: REDIS_PASSWORD });
  t.teardown(() => redis.destroy());
  const client = redis.client();
  t.teardown(() => client.disconnect());
  const docker = await ensureDocker();
  await ensureTestImage(docker);

  const dir = await mkdtemp(join(tmpdir(), 'upkeep-product-data-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const { file } = await writeConfig(t, {
    server: { authToken: TOKEN },
    targets: {
      postgres: [{ name: 'main', url: postgres.url('postgres') }],
      redis: [{ name: 'cache', url: redis.url, keyPatterns: ['celery-task-meta-*'] }],
      docker: [{ name: 'local', socketPath: DOCKER_SOCKET }],
      backups: [{ name: 'refnet', dir: join(dir, 'backups'), pattern: 'refnet_*.sql.gz', source: { target: 'main', database: 'refnet' } }],
      logs: [{ name: 'refnet', dir: join(dir, 'logs'), pattern: 'refnet_*.log*' }],
      files: [{ name: 'api-tmp', dir: join(dir, 'tmp'), pattern: '*.tmp' }],
    },
    collectors: { disabled: ['docker', 'disks'] },
    remediation: {
      cooldownSeconds: 0,
      retention: [{ name: 'job_logs', target: 'main', database: 'refnet', table: 'public.job_logs', timestampColumn: 'created_at', olderThan: '30 days', batchSize: 100 }],
    },
  });
  const dirs = { logs: join(dir, 'logs'), scratch: join(dir, 'tmp') };
  await mkdir(dirs.logs);
  await mkdir(dirs.scratch);
  await mkdir(join(dir, 'backups'));

  const seedPass = async (pass: number) => {
    await makeProblems(postgres, dirs, pass);
    for (let i = 0; i < 200; i++) await client.set(`celery-task-meta-${pass}-${i}`, 'x');
    const label = `${LABEL_KEY}=${process.pid}-${pass}`;
    const stopped = await runContainer(docker, { name: `upkeep-product-${process.pid}-${pass}`, cmd: ['true'], labels: { [LABEL_KEY]: `${process.pid}-${pass}` } });
    t.teardown(() => stopped.remove({ force: true }).catch(() => undefined));
    await stopped.wait();
    return label;
  };

  t.test('through the API of the installed serve', async (t) => {
    const label = await seedPass(1);
    const served = await serveInstalled(t, file);
    // A progress interval past what a Node timer holds fired every millisecond (a log line and a
    // pg_stat_progress_vacuum read each time); it is refused before anything runs.
    const flood = await fetch(`${served.base}/remediations/postgres.vacuum?wait=true`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ params: { target: 'main', database: 'refnet', table: 'public.orders', progressSeconds: 3_000_000 } }),
    });
    t.equal(flood.status, 400);
    t.same(await flood.json(), { error: 'invalid params: progressSeconds: must be 1 to 86400 (a day)' });
    for (const { name, params } of everyRemediation(label)) {
      const response = await fetch(`${served.base}/remediations/${name}?wait=true`, {
        method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ params }),
      });
      const run = await response.json() as { status?: string; error?: string; reason?: string };
      t.equal(response.status, 200, `${name}: HTTP 200`);
      t.equal(run.status, 'success', `${name}: ${run.error ?? run.reason ?? ''}`);
      t.ok(served.alive(), `alive after ${name}`);
    }
    t.same(await readdir(dirs.scratch), [], 'files.cleanup deleted the old temporary file');
    t.same((await readdir(join(dir, 'backups'))).filter((name) => name.endsWith('.sql.gz')).length, 1, 'one backup written');
    t.equal(await served.stop(), 0);
    const lines = served.logLines();
    t.same(lines.filter((line) => 'notJson' in line), [], 'every log line is JSON');
    const names = everyRemediation(label).map((entry) => entry.name);
    t.same(lines.filter((line) => line.msg === 'request').map((line) => `${String(line.method)} ${String(line.path)} ${String(line.status)}`),
      ['POST /remediations/postgres.vacuum?wait=*** 400', ...names.map((name) => `POST /remediations/${name}?wait=*** 200`)], 'one line per API request');
    t.same(lines.filter((line) => line.msg === 'run finished').map((line) => `${String(line.remediation)} ${String(line.trigger)} ${String(line.status)} ${String(line.level)}`),
      names.map((name) => `${name} manual success 30`), 'one line per finished run');
    for (const secret of [TOKEN, REDIS_PASSWORD]) t.notMatch(served.output(), secret, 'no secret in the log');
  });

  t.test('through `upkeep run` of the installed package', async (t) => {
    const label = await seedPass(2);
    for (const { name, params } of everyRemediation(label)) {
      const args = ['run', name, '--config', file, ...Object.entries(params).flatMap(([key, value]) => ['--param', `${key}=${String(value)}`])];
      const result = await upkeep(args, { timeoutMs: 120_000 });
      t.equal(result.code, 0, `${name}: exit 0\n${result.stdout}\n${result.stderr}`);
      t.match(result.stdout, /\nstatus: success\n/, `${name}: success`);
      for (const secret of [TOKEN, REDIS_PASSWORD]) t.notMatch(result.stdout + result.stderr, secret, `${name}: no secret in the output`);
    }
    t.same(await readdir(dirs.scratch), [], 'files.cleanup deleted the old temporary file');
  });
});
