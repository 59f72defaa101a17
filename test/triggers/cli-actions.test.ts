import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { main } from '../../src/cli.js';
import { DOCKER_SOCKET, ensureDocker, ensureTestImage, runContainer } from '../fixtures/docker.js';
import { startPostgres } from '../fixtures/postgres.js';
import { startRedis } from '../fixtures/redis.js';
import { makeDatabase, writeConfigFile } from '../actions/backup-fixture.js';

const DAY = 86_400;

/** Every remediation of this family, through `upkeep run` exactly as an operator types it. */
t.test('upkeep run, for every Redis, Docker, backup and file remediation', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'upkeep-cli-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const redis = await startRedis();
  t.teardown(() => redis.destroy());
  const postgres = await startPostgres();
  t.teardown(() => postgres.destroy());
  await makeDatabase(postgres, 'refnet', 2);
  const docker = await ensureDocker();
  await ensureTestImage(docker);
  const logs = join(root, 'logs');
  const scratch = join(root, 'tmp');
  await mkdir(logs);
  await mkdir(scratch);
  const old = async (path: string, ageDays: number) => {
    await writeFile(path, 'line\n'.repeat(100));
    await utimes(path, Date.now() / 1000 - ageDays * DAY, Date.now() / 1000 - ageDays * DAY);
  };
  await old(join(logs, 'refnet_1.log'), 2);
  await old(join(logs, 'refnet_2.log.gz'), 40);
  await old(join(scratch, 'upload.tmp'), 2);
  const client = redis.client();
  t.teardown(() => client.disconnect());
  for (let i = 0; i < 500; i++) await client.set(`celery-task-meta-${i}`, 'x', 'EX', 30 * DAY);
  const config = await writeConfigFile({
    state: { dir: join(root, 'state') },
    targets: {
      postgres: [{ name: 'main', url: postgres.url('postgres') }],
      redis: [{ name: 'cache', url: redis.url, keyPatterns: ['celery-task-meta-*'] }],
      docker: [{ name: 'local', socketPath: DOCKER_SOCKET }],
      backups: [{ name: 'refnet', dir: join(root, 'backups'), pattern: 'refnet_*.sql.gz', source: { target: 'main', database: 'refnet' } }],
      logs: [{ name: 'refnet', dir: logs, pattern: 'refnet_*.log' }],
      files: [{ name: 'api-tmp', dir: scratch, pattern: '*.tmp' }],
    },
  });
  const run = async (...args: string[]) => {
    const out: string[] = [];
    const code = await main(['run', ...args, '--config', config], { out: (line) => out.push(line), err: () => undefined, env: {} });
    return { code, text: out.join('\n') };
  };

  t.test('redis', async (t) => {
    const saved = await run('redis.bgsave', '--param', 'target=cache');
    t.equal(saved.code, 0);
    t.match(saved.text, /status: success\nverification: ok: LASTSAVE advanced/);
    const purge = await run('redis.memory_purge', '--param', 'target=cache', '--param', 'activeDefrag=false', '--dry-run');
    t.match(purge.text, /\(cli, dry run\)\nplan:\n  redis: MEMORY PURGE\nstatus: dry_run/);
    const counted = await run('redis.expire_keys', '--param', 'target=cache', '--param', 'pattern=celery-task-meta-*', '--param', 'when=ttl-over', '--param', 'ttlOverSeconds=604800', '--dry-run');
    t.match(counted.text, /redis: UNLINK <kept keys of the batch> \(500 keys match now\)\nstatus: dry_run/);
    t.equal(await client.dbsize(), 500, 'a dry run deletes nothing');
    const expired = await run('redis.expire_keys', '--param', 'target=cache', '--param', 'pattern=celery-task-meta-*', '--param', 'when=ttl-over', '--param', 'ttlOverSeconds=604800');
    t.match(expired.text, /status: success/);
    t.equal(await client.dbsize(), 0);
    const refused = await run('redis.expire_keys', '--param', 'target=cache', '--param', 'pattern=*');
    t.equal(refused.code, 1);
    t.match(refused.text, /status: rejected\nreason: pattern "\*" is not in targets\.redis\[cache\]\.keyPatterns/);
  });

  t.test('docker', async (t) => {
    const label = `upkeep.cli.test=${process.pid}-${Date.now()}`;
    const stopped = await runContainer(docker, { name: `upkeep-cli-${process.pid}-${Date.now()}`, cmd: ['true'], labels: { [label.split('=')[0] ?? '']: label.split('=')[1] ?? '' } });
    t.teardown(() => stopped.remove({ force: true }).catch(() => undefined));
    await stopped.wait();
    const dry = await run('docker.prune', '--param', 'target=local', '--dry-run');
    t.match(dry.text, /docker: POST \/containers\/prune filters=\{\}\n.*\n.*\n  docker: POST \/build\/prune filters=\{\}\nstatus: dry_run/);
    const pruned = await run('docker.prune', '--param', 'target=local', '--param', `label=${label}`, '--param', 'images=false', '--param', 'networks=false');
    t.match(pruned.text, /status: success\nverification: ok: reported \d+ bytes reclaimed/);
    await t.rejects(stopped.inspect(), /no such container/i);
  });

  t.test('backups', async (t) => {
    const dumped = await run('backup.pg_dump', '--param', 'backup=refnet');
    t.match(dumped.text, /status: success\nverification: ok: refnet_\d{8}_\d{6}\.sql\.gz/);
    const verified = await run('backup.verify', '--param', 'backup=refnet', '--param', 'maxRowDifferenceRatio=0');
    t.match(verified.text, /status: success\nverification: ok: refnet_\d{8}_\d{6}\.sql\.gz restored: 5 tables, row counts match the source/);
    const planned = await run('backup.verify', '--param', 'backup=refnet', '--dry-run');
    t.match(planned.text, /sql: create database "upkeep_verify_refnet_\w+" template template0/);
  });

  t.test('files', async (t) => {
    const dry = await run('logs.rotate', '--param', 'name=refnet', '--dry-run');
    t.match(dry.text, /file: gzip .*refnet_1\.log -> .*refnet_1\.log\.gz \(mtime kept\), then unlink .*\n  file: unlink .*refnet_2\.log\.gz\nstatus: dry_run/);
    const rotated = await run('logs.rotate', '--param', 'name=refnet', '--param', 'compressAfterDays=1', '--param', 'deleteAfterDays=30');
    t.match(rotated.text, /status: success\nverification: ok: 1 compressed, 1 deleted/);
    t.same(await readdir(logs), ['refnet_1.log.gz']);
    const cleaned = await run('files.cleanup', '--param', 'name=api-tmp', '--param', 'olderThanHours=24');
    t.match(cleaned.text, /status: success/);
    t.same(await readdir(scratch), []);
  });
});
