import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { appendFile, chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import t from 'tap';
import { listBackups, type BackupFile } from '../../src/systems/files/backups.js';
import { backupFileName, dumpComplete, followDump, pgDump, retentionVictims, type DumpOutput } from '../../src/actions/backup.js';
import { brokenPipe, libpqTarget, postgresBinary } from '../../src/systems/process/child.js';
import { main } from '../../src/cli.js';
import { Engine } from '../../src/engine/engine.js';
import { ValidationError } from '../../src/errors.js';
import { startPostgres } from '../fixtures/postgres.js';
import { waitFor } from '../fixtures/ports.js';
import { childrenOf } from '../fixtures/procs.js';
import { makeDatabase, restoreWithPsql, sampleRss, tableCounts, writeConfigFile } from './backup-fixture.js';
import { buildContext, perform, testConfig } from './context.js';

const DAY = 86_400;

async function alive(pid: number): Promise<boolean> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return status !== '' && !/^State:\s+Z/m.test(status);
}
const UPKEEP = new URL('../../bin/upkeep.js', import.meta.url).pathname;
// `upkeep run` as a separate process without tap's loaders (tap adds them through NODE_OPTIONS),
// so its RSS is upkeep's own, as an operator would run it. env execs node, keeping the PID.
const CHILD_ENV = { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: tmpdir() };
const UPKEEP_RUN = ['-u', 'NODE_OPTIONS', process.execPath, UPKEEP, 'run'];

t.test('pure parts', async (t) => {
  t.equal(backupFileName('refnet', new Date(Date.UTC(2025, 0, 2, 3, 4, 5))), 'refnet_20250102_030405.sql.gz');
  const now = 1_700_000_000;
  const file = (name: string, ageDays: number): BackupFile => ({ name, path: `/b/${name}`, sizeBytes: 1, mtimeSeconds: now - ageDays * DAY });
  const files = [file('new', 1), file('six', 6), file('eight', 8), file('thirty', 30)];
  t.same(retentionVictims(files, files[0] ?? null, now, 7).map((victim) => victim.name), ['eight', 'thirty']);
  const allOld = [file('ten', 10), file('twenty', 20)];
  t.same(retentionVictims(allOld, allOld[0] ?? null, now, 7).map((victim) => victim.name), ['twenty'], 'the newest valid backup stays even when it is old');
  t.same(libpqTarget('postgres://app:s%40cret@127.0.0.1:5432/refnet?sslmode=disable'), { url: 'postgres://app@127.0.0.1:5432/refnet?sslmode=disable', env: { PGPASSWORD: 's@cret' } });
  t.same(libpqTarget('postgres://app@127.0.0.1/refnet').env, {});
  // ?password= leaves the URL too, read as node-pg reads it; the other parameters stay as written.
  t.same(libpqTarget('postgres://app@h/db?sslmode=require&password=p%26w+x&options=-c%20a%3D1'), { url: 'postgres://app@h/db?sslmode=require&options=-c%20a%3D1', env: { PGPASSWORD: 'p&w x' } });
  t.same(libpqTarget('postgres://app:userinfo@h/db?password=query'), { url: 'postgres://app@h/db', env: { PGPASSWORD: 'query' } }, 'the query wins, as in node-pg');
  t.same(libpqTarget('postgres://app:pw@h/db?sslpassword=SslPwLEAK&sslmode=disable'), { url: 'postgres://app@h/db?sslmode=disable', env: { PGPASSWORD: 'pw' } }, 'sslpassword never reaches argv or a plan');
  t.same(libpqTarget('postgres://app:userinfo@h/db?password='), { url: 'postgres://app@h/db', env: { PGPASSWORD: 'userinfo' } });
  t.same(brokenPipe({ code: 1, signal: null }, 'gzip: stdout: Connection reset by peer'), true);
  t.same(brokenPipe({ code: null, signal: 'SIGPIPE' }, ''), true);
  t.same(brokenPipe({ code: 1, signal: null }, 'gzip: x.gz: unexpected end of file'), false);
  const fake = await mkdtemp(join(tmpdir(), 'upkeep-pgbin-'));
  t.teardown(() => rm(fake, { recursive: true, force: true }));
  for (const version of ['9.6', '13', '16']) {
    await mkdir(join(fake, version, 'bin'), { recursive: true });
    await writeFile(join(fake, version, 'bin', 'pg_dump'), '#!/bin/sh\n');
    await chmod(join(fake, version, 'bin', 'pg_dump'), 0o755);
  }
  t.equal(await postgresBinary('pg_dump', fake), join(fake, '16', 'bin', 'pg_dump'), 'the newest client wins');
  t.equal(pgDump.risk(pgDump.params.parse({ backup: 'x' })), 'safe');
  t.throws(() => pgDump.params.parse({ backup: 'x', keepDays: 0 }));
});

t.test('backup.pg_dump on a 200 MB database', async (t) => {
  const server = await startPostgres();
  t.teardown(() => server.destroy());
  await makeDatabase(server, 'refnet', 200);
  // Retention and verify need a whole dump, not a large one: a 1 MB database keeps them quick.
  await makeDatabase(server, 'tinynet', 1);
  const [size] = await server.query<{ bytes: string }>("select pg_database_size('refnet')::text as bytes");
  t.ok(Number(size?.bytes) > 190 * 1024 * 1024, `database is ${Math.round(Number(size?.bytes) / 1048576)} MB`);
  const sourceCounts = await tableCounts(server.url('refnet'));
  const root = await mkdtemp(join(tmpdir(), 'upkeep-backup-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const dir = join(root, 'backups');
  const raw = {
    state: { dir: join(root, 'state') },
    targets: {
      postgres: [{ name: 'main', url: server.url('postgres') }],
      backups: [
        { name: 'refnet', dir, pattern: 'refnet_*.sql.gz', keepDays: 7, source: { target: 'main', database: 'refnet' } },
        { name: 'tinynet', dir, pattern: 'tinynet_*.sql.gz', keepDays: 7, source: { target: 'main', database: 'tinynet' } },
        // A directory of its own: '*.gz' in the others' would count their backups (a config error).
        { name: 'nosource', dir: join(root, 'nosource'), pattern: '*.gz' },
        { name: 'wrongpattern', dir, pattern: 'db-*.sql.gz', source: { target: 'main', database: 'refnet' } },
        { name: 'missingdb', dir: join(root, 'missing'), pattern: 'missingdb_*.sql.gz', source: { target: 'main', database: 'nope' } },
      ],
    },
  };
  const configFile = await writeConfigFile(raw);
  const context = buildContext(raw);
  t.teardown(() => context.close());
  let tinyBackup = '';

  t.test('`upkeep run`: the dump restores to the same per-table row counts, with RSS under 150 MB', async (t) => {
    const child = spawn('/usr/bin/env', [...UPKEEP_RUN, 'backup.pg_dump', '--param', 'backup=refnet', '--param', 'progressSeconds=1', '--log-level', 'info', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'], env: CHILD_ENV });
    const rss = sampleRss(child.pid ?? 0);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    const [code] = await once(child, 'close');
    rss.stop();
    t.equal(code, 0, code === 0 ? 'exit code 0' : `${stdout}${stderr}`);
    // 200 MB through gzip takes seconds: with progressSeconds=1 the dump says how far it got (at info; `run` logs warnings by default).
    t.ok(stderr.split('\n').some((line) => line.includes('"msg":"pg_dump in progress"')), 'a long dump logs its progress');
    t.ok(rss.peak() > 0 && rss.peak() < 150 * 1024 * 1024, `peak RSS of upkeep while dumping: ${Math.round(rss.peak() / 1048576)} MB`);
    t.match(stdout, /^run \S+: backup\.pg_dump \(cli\)\nplan:\n  exec: \S+pg_dump --format=plain --compress=6 --no-password --dbname \S+ > \S+\.partial\n/);
    t.match(stdout, /status: success\nverification: ok: refnet_\d{8}_\d{6}\.sql\.gz: \d+ bytes, decompresses in full and ends with the pg_dump trailer \(checked as it was written; the same SHA-256 on disk\)/);
    const backups = await listBackups(dir, 'refnet_*.sql.gz');
    t.equal(backups.length, 1);
    const firstBackup = backups[0]?.path ?? '';
    t.ok(stdout.includes(`link it to ${firstBackup}, unlink ${firstBackup}.partial, fsync`), 'the file the plan announced is the file written, linked as the run does');
    t.ok((backups[0]?.sizeBytes ?? 0) > 20 * 1024 * 1024, `${backups[0]?.sizeBytes} bytes compressed`);
    await server.query('create database restored');
    await restoreWithPsql(firstBackup, server.url('restored'));
    t.same(await tableCounts(server.url('restored')), sourceCounts, 'every table has the same row count after a restore');
    t.same(sourceCounts.map((table) => `${table.schema}.${table.name}`), ['app.small', 'public.Mixed Case', 'public.empty_table', 'public.events', 'public.parted']);
  });

  t.test('kill -9 of `upkeep run` mid-dump leaves nothing the backups collector counts; the next run cleans up', async (t) => {
    const before = await listBackups(dir, 'refnet_*.sql.gz');
    const child = spawn('/usr/bin/env', [...UPKEEP_RUN, 'backup.pg_dump', '--param', 'backup=refnet', '--config', configFile], { stdio: 'ignore', env: CHILD_ENV });
    const exited = once(child, 'exit');
    const partial = await waitFor('a partial dump of more than 1 MB', async () => {
      const name = (await readdir(dir)).find((entry) => entry.endsWith('.partial'));
      if (!name || (await stat(join(dir, name))).size < 1024 * 1024) throw new Error('not yet');
      return name;
    }, 120_000, 50);
    const helpers = await childrenOf(child.pid ?? 0);
    t.same(helpers.map((helper) => helper.name).sort(), ['gzip', 'pg_dump', 'tail'], 'pg_dump, and gzip -dc | tail -c 1024 checking its output, run as children of upkeep');
    child.kill('SIGKILL');
    await exited;
    for (const helper of helpers) await waitFor(`${helper.name} to die with its parent`, async () => { if (await alive(helper.pid)) throw new Error('alive'); });
    const sizeAfterKill = (await stat(join(dir, partial))).size;
    t.same(await listBackups(dir, 'refnet_*.sql.gz'), before, 'the collector sees exactly the backups from before');
    t.equal((await stat(join(dir, partial))).size, sizeAfterKill, 'nothing writes to the leftover any more');

    const out: string[] = [];
    // In this process (progressSeconds=1), so the coverage of backup.ts includes the progress timer.
    const code = await main(['run', 'backup.pg_dump', '--param', 'backup=refnet', '--param', 'progressSeconds=1', '--config', configFile], { out: (line) => out.push(line), err: () => undefined, env: {} });
    t.equal(code, 0, code === 0 ? 'exit code 0' : out.join('\n'));
    t.notOk((await readdir(dir)).some((entry) => entry.endsWith('.partial')), 'the next run removed the leftover');
    t.equal((await listBackups(dir, 'refnet_*.sql.gz')).length, 2);
    const engine = await Engine.create({ config: testConfig(raw), log: context.log });
    const interrupted = (await engine.list({ status: 'interrupted' })).runs;
    await engine.close();
    t.same(interrupted.map((run) => [run.remediation, run.trigger]), [['backup.pg_dump', 'cli']], 'the killed run is journalled as interrupted');
  });

  t.test('retention removes only files older than keepDays and keeps the newest', async (t) => {
    const now = Date.now() / 1000;
    const aged = async (name: string, ageDays: number) => {
      const path = join(dir, name);
      await writeFile(path, Buffer.from([0x1f, 0x8b, 0, 0]));
      await utimes(path, now - ageDays * DAY, now - ageDays * DAY);
    };
    await aged('tinynet_20200101_000000.sql.gz', 30);
    await aged('tinynet_20200102_000000.sql.gz', 8);
    await aged('tinynet_20200103_000000.sql.gz', 6);
    await aged('other_20200101_000000.sql.gz', 30);
    // refnet's dumps from the subtests above share the directory: another backup's files.
    const others = (await listBackups(dir, 'refnet_*.sql.gz')).map((file) => file.name);
    const params = await pgDump.resolve(pgDump.params.parse({ backup: 'tinynet' }), context);
    const { steps: plan } = await pgDump.plan(params, context);
    t.same(plan.filter((step) => step.detail.startsWith('unlink')).map((step) => step.detail), [
      `unlink ${join(dir, 'tinynet_20200102_000000.sql.gz')} (older than 7 days)`,
      `unlink ${join(dir, 'tinynet_20200101_000000.sql.gz')} (older than 7 days)`,
    ]);
    t.match(plan[0]?.detail, new RegExp(`pg_dump --format=plain --compress=6 --no-password --dbname postgres://postgres@127\\.0\\.0\\.1:${server.port}/tinynet > ${dir}/tinynet_\\d{8}_\\d{6}\\.sql\\.gz\\.partial$`));
    const result = await perform(pgDump, params, context);
    t.same(result.output.detail.deleted, ['tinynet_20200102_000000.sql.gz', 'tinynet_20200101_000000.sql.gz']);
    const names = (await readdir(dir)).sort();
    t.ok(names.includes('tinynet_20200103_000000.sql.gz'), 'six days old: kept');
    t.ok(names.includes('other_20200101_000000.sql.gz'), 'not matching the pattern: never touched');
    t.equal(others.length, 2);
    t.same(others.filter((name) => !names.includes(name)), [], 'another backup\'s dumps in the same directory are never touched');
    tinyBackup = (await listBackups(dir, 'tinynet_*.sql.gz'))[0]?.path ?? '';
    t.equal(tinyBackup, result.output.detail.file, 'the new dump is the newest backup');
  });

  t.test('verify rejects a truncated, incomplete or changed dump', async (t) => {
    const params = pgDump.params.parse({ backup: 'tinynet' });
    const signal = new AbortController().signal;
    // What run() records: the file as followed while it was written (here, already whole).
    const output = async (file: string) => ({ detail: { file, ...(await followDump(file, Promise.resolve(), signal)), seconds: 0, deleted: [], removedPartials: [] } });
    const verify = async (detail: DumpOutput) => pgDump.verify(params, { proceed: true, reason: '' }, { detail }, context);
    const copy = join(dir, 'tinynet_20000101_000000.sql.gz');
    await writeFile(copy, await readFile(tinyBackup));
    const whole = await output(copy);
    t.equal(whole.detail.problem, null);
    t.equal(whole.detail.gzipBytes, (await stat(tinyBackup)).size);
    t.equal((await verify(whole.detail)).ok, true);
    await appendFile(copy, 'x');
    t.match((await verify(whole.detail)).detail, /^tinynet_20000101_000000\.sql\.gz changed after it was written: SHA-256 [0-9a-f]{64}, written [0-9a-f]{64}$/);
    await truncate(copy, Math.floor((await stat(copy)).size / 2));
    t.same(await verify((await output(copy)).detail), { ok: false, detail: 'tinynet_20000101_000000.sql.gz is corrupt or truncated: unexpected end of file' });
    await t.rejects(dumpComplete(copy, signal), /^tinynet_20000101_000000.sql.gz is corrupt or truncated: unexpected end of file$/);
    t.equal(await dumpComplete(tinyBackup, signal), true);
    const missing = await verify({ ...whole.detail, file: join(dir, 'tinynet_gone.sql.gz') });
    t.match(missing.detail, /is not counted as a backup/);
    await writeFile(copy, gzipSync('create table cut_short (id int);\n'));
    t.same(await verify((await output(copy)).detail), { ok: false, detail: 'tinynet_20000101_000000.sql.gz is incomplete: no "-- PostgreSQL database dump complete" at its end' });
    t.same(await verify({ file: copy, gzipBytes: 1, seconds: 0, deleted: [], removedPartials: [] }), { ok: false, detail: 'tinynet_20000101_000000.sql.gz: the run recorded no check of the dump' });
    await rm(copy);
  });

  t.test('bad configurations are refused before anything runs', async (t) => {
    await t.rejects(pgDump.resolve(pgDump.params.parse({ backup: 'unknown' }), context), ValidationError);
    await t.rejects(pgDump.resolve(pgDump.params.parse({ backup: 'nosource' }), context), /has no source/);
    await t.rejects(pgDump.resolve(pgDump.params.parse({ backup: 'wrongpattern' }), context), /pattern "db-\*\.sql\.gz" does not match; use pattern "wrongpattern_\*\.sql\.gz"/);
    await t.rejects(pgDump.resolve(pgDump.params.parse({ backup: 'missingdb' }), context), /database "nope" does not exist/);
  });

  t.test('two dumps planned in the same second take that second and the next one', async (t) => {
    // 1 ms into a second that is long past, so no earlier dump holds either name.
    const atMs = Date.UTC(2021, 4, 6, 7, 8, 9, 1);
    const sameSecond = { ...context, now: () => atMs };
    const first = await perform(pgDump, { backup: 'tinynet' }, sameSecond);
    const second = await perform(pgDump, { backup: 'tinynet' }, sameSecond);
    const files = [join(dir, 'tinynet_20210506_070809.sql.gz'), join(dir, 'tinynet_20210506_070810.sql.gz')];
    t.equal(first.output.detail.file, files[0]);
    t.equal(second.output.detail.file, files[1], 'the next second, not a failed link after a whole dump');
    for (const file of files) t.ok((await stat(file)).size > 0, `${file} is there`);
    await Promise.all(files.map((file) => rm(file)));
  });

  t.test('a run whose next 60 names are all taken fails before dumping and says why', async (t) => {
    const atMs = Date.UTC(2021, 4, 6, 8, 0, 0);
    const taken = Array.from({ length: 60 }, (_, second) => join(dir, backupFileName('tinynet', new Date(atMs + second * 1000))));
    await Promise.all(taken.map((file) => writeFile(file, '')));
    t.teardown(() => Promise.all(taken.map((file) => rm(file, { force: true }))));
    const params = await pgDump.resolve(pgDump.params.parse({ backup: 'tinynet' }), context);
    await t.rejects(pgDump.plan(params, { ...context, now: () => atMs }), { message: `backup "tinynet": the names for the next 60 seconds are all taken in ${dir}` });
  });

  t.test('a dump whose check fails (its gzip checker killed) is removed before it takes its name, and no older backup is deleted', async (t) => {
    const now = Date.now() / 1000;
    const old = join(dir, 'refnet_20200101_000000.sql.gz');
    await writeFile(old, await readFile(tinyBackup));
    await utimes(old, now - 30 * DAY, now - 30 * DAY);
    const before = (await listBackups(dir, 'refnet_*.sql.gz')).map((file) => file.name);
    const params = pgDump.params.parse({ backup: 'refnet' });
    const { payload } = await pgDump.plan(params, context);
    t.ok(payload.victims.includes(old), 'the 30-day-old backup is planned for deletion');
    const running = pgDump.run(params, payload, context);
    running.catch(() => undefined);
    const checker = await waitFor('the dump\'s gzip checker, once 1 MB is written', async () => {
      const name = (await readdir(dir)).find((entry) => entry.endsWith('.partial'));
      const gzip = (await childrenOf(process.pid)).find((child) => child.name === 'gzip');
      if (!name || !gzip || (await stat(join(dir, name))).size < 1024 * 1024) throw new Error('not yet');
      return gzip;
    }, 120_000, 50);
    process.kill(checker.pid, 'SIGKILL');
    await t.rejects(running, { message: /^refnet_\d{8}_\d{6}\.sql\.gz is corrupt or truncated: gzip exited with SIGKILL; it was removed, and no older backup was deleted$/ });
    t.same((await listBackups(dir, 'refnet_*.sql.gz')).map((file) => file.name), before, 'the old backup is kept, and no new one is counted');
    t.notOk((await readdir(dir)).some((entry) => entry.endsWith('.partial')), 'the partial dump is removed');
    await rm(old);
  });

  t.test('a failing pg_dump leaves no file behind and says why', async (t) => {
    const params = pgDump.params.parse({ backup: 'missingdb' });
    const check = await pgDump.check(params, context);
    t.equal(check.reason, 'no backup yet');
    await t.rejects(pgDump.run(params, (await pgDump.plan(params, context)).payload, context), /pg_dump exited with 1: .*database "nope" does not exist/);
    t.same(await readdir(join(root, 'missing')), []);
  });
});
