import { mkdir, mkdtemp, readdir, rm, truncate, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t from 'tap';
import { z } from 'zod';
import { pgDump } from '../../src/actions/backup.js';
import { backupVerify } from '../../src/actions/backup-verify.js';
import { directoryDumpArgs, restoreArgs } from '../../src/actions/backup-directory.js';
import { ValidationError } from '../../src/errors.js';
import { listBackups, looksValid, newestValidBackup } from '../../src/systems/files/backups.js';
import { startPostgres } from '../fixtures/postgres.js';
import { makeDatabase, makeOwnedDatabase } from './backup-fixture.js';
import { buildContext, perform } from './context.js';

const DAY_MS = 86_400_000;
const dumpOutput = z.object({ file: z.string(), gzipBytes: z.number(), deleted: z.array(z.string()), removedPartials: z.array(z.string()) });

t.test('the command lines', async (t) => {
  t.same(directoryDumpArgs('postgres://u@h/db', '/b/x.dir.partial', 4), ['--format=directory', '--jobs=4', '--compress=6', '--no-password', '--file', '/b/x.dir.partial', '--dbname', 'postgres://u@h/db']);
  t.same(restoreArgs('postgres://u@h/scratch', '/b/x.dir'), ['--no-owner', '--no-privileges', '--exit-on-error', '--no-password', '--dbname', 'postgres://u@h/scratch', '/b/x.dir']);
  t.equal(pgDump.params.safeParse({ backup: 'x', jobs: 0 }).success, false);
  t.equal(pgDump.params.safeParse({ backup: 'x', jobs: 33 }).success, false);
  t.equal(pgDump.params.parse({ backup: 'x', jobs: '4' }).jobs, 4);
});

t.test('backup.pg_dump with jobs: a directory-format dump, counted, verified by a restore, kept by retention', async (t) => {
  const server = await startPostgres();
  t.teardown(() => server.destroy());
  await makeDatabase(server, 'refnet', 10);
  const root = await mkdtemp(join(tmpdir(), 'upkeep-dirdump-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const dir = join(root, 'backups');
  const context = buildContext({
    state: { dir: join(root, 'state') },
    targets: {
      postgres: [{ name: 'main', url: server.url('postgres') }],
      backups: [
        { name: 'refnet', dir, pattern: 'refnet_*', keepDays: 7, source: { target: 'main', database: 'refnet' } },
        { name: 'plainonly', dir, pattern: 'plainonly_*.sql.gz', source: { target: 'main', database: 'refnet' } },
      ],
    },
  });
  t.teardown(() => context.close());

  t.test('a pattern that cannot match a directory dump is refused before anything runs', async (t) => {
    const refused = pgDump.resolve(pgDump.params.parse({ backup: 'plainonly', jobs: 2 }), context);
    await t.rejects(refused, ValidationError);
    await t.rejects(refused, { message: /^backup "plainonly": pg_dump writes names like plainonly_\d{8}_\d{6}\.dir, which pattern "plainonly_\*\.sql\.gz" does not match; use pattern "plainonly_\*"$/ });
  });

  await mkdir(dir, { recursive: true });
  // A plain dump from ten days ago, a leftover of a directory dump that died, and one old directory dump.
  const old = join(dir, 'refnet_20200101_000000.dir');
  await mkdir(old);
  await writeFile(join(old, 'toc.dat'), 'PGDMP old');
  await utimes(join(old, 'toc.dat'), new Date(Date.now() - 10 * DAY_MS), new Date(Date.now() - 10 * DAY_MS));
  const leftover = join(dir, 'refnet_20200102_000000.dir.partial');
  await mkdir(leftover);
  await writeFile(join(leftover, '3001.dat.gz'), 'half');

  const result = await perform(pgDump, { backup: 'refnet', jobs: 2 }, context);
  const output = dumpOutput.parse(result.output.detail);
  t.match(output.file, new RegExp(`^${dir}/refnet_\\d{8}_\\d{6}\\.dir$`));
  t.equal(result.verification.ok, true, result.verification.detail);
  t.match(result.verification.detail, /^refnet_\d{8}_\d{6}\.dir: \d+ bytes, a directory-format dump whose table of contents pg_restore reads$/);
  t.same(output.deleted, ['refnet_20200101_000000.dir'], 'the directory past keepDays is removed whole');
  t.same(output.removedPartials, ['refnet_20200102_000000.dir.partial'], 'the dead dump\'s partial directory is removed');
  t.same((await readdir(dir)).sort(), [output.file.split('/').at(-1)]);
  t.match(result.plan[0]?.detail, /pg_dump --format=directory --jobs=2 --compress=6 --no-password --file .*refnet_\d{8}_\d{6}\.dir\.partial --dbname postgres:\/\/postgres@127\.0\.0\.1:\d+\/refnet$/);
  t.equal(result.plan[1]?.detail, `pg_dump fsyncs ${output.file}.partial, rename it to ${output.file} if that name is free, fsync ${dirname(output.file)}`, 'a directory is renamed, as the run does');
  t.same(result.payload, { file: output.file, victims: [old] }, 'run() was handed the plan');

  const files = await readdir(output.file);
  t.ok(files.includes('toc.dat'));
  t.ok(files.filter((name) => name.endsWith('.dat.gz')).length >= 5, 'one compressed file per table');
  const [listed] = await listBackups(dir, 'refnet_*');
  t.match(listed, { name: output.file.split('/').at(-1), path: output.file, directory: true });
  t.equal(listed?.sizeBytes, output.gzipBytes, 'the size counted is the files\' total the run reported');
  t.same(await newestValidBackup(await listBackups(dir, 'refnet_*')), listed, 'the collector\'s newest valid backup');

  t.test('backup.verify restores it with pg_restore and the counts match the source', async (t) => {
    const verified = await perform(backupVerify, { backup: 'refnet', maxRowDifferenceRatio: 0 }, context);
    t.equal(verified.verification.ok, true, verified.verification.detail);
    t.match(verified.output.detail, { tables: 5, rows: 1000 + 10 + 5000 + Math.round((10 * 1024 * 1024) / 200), comparedWithSource: true, problems: [] });
    t.same(verified.plan.map((step) => step.kind), ['sql', 'exec', 'sql', 'exec', 'sql', 'sql']);
    t.match(verified.plan[3]?.detail, /pg_restore --no-owner --no-privileges --exit-on-error --no-password --dbname postgres:\/\/postgres@127\.0\.0\.1:\d+\/upkeep_verify_refnet_\w+ .*refnet_\d{8}_\d{6}\.dir$/);
  });

  t.test('a directory whose table of contents is cut short is not valid, and its verify fails clearly', async (t) => {
    const broken = join(dir, 'refnet_20990101_000000.dir');
    await mkdir(broken);
    t.teardown(() => rm(broken, { recursive: true, force: true }));
    for (const name of files) await writeFile(join(broken, name), '');
    await writeFile(join(broken, 'toc.dat'), 'PGDMP');
    const newest = (await listBackups(dir, 'refnet_*'))[0];
    t.equal(newest?.path, broken, 'the newest, by its table of contents');
    t.equal(await looksValid(newest ?? listed ?? { name: '', path: '', sizeBytes: 0, mtimeSeconds: 0 }), true, 'the magic alone passes the cheap check');
    await t.rejects(perform(backupVerify, { backup: 'refnet' }, context), { message: /^backup refnet_20990101_000000\.dir is incomplete or corrupt: pg_restore --list .*refnet_20990101_000000\.dir failed: pg_restore: error: .+/ });
    await truncate(join(broken, 'toc.dat'), 0);
    t.equal(await looksValid(newest ?? listed ?? { name: '', path: '', sizeBytes: 0, mtimeSeconds: 0 }), false, 'an empty table of contents is not a backup');
  });

  t.test('a directory without a table of contents is not counted', async (t) => {
    const bare = join(dir, 'refnet_20990202_000000.dir');
    await mkdir(bare);
    t.teardown(() => rm(bare, { recursive: true, force: true }));
    t.notOk((await listBackups(dir, 'refnet_*')).some((file) => file.path === bare));
  });

  t.test('a failed directory dump leaves no partial directory', async (t) => {
    const failing = buildContext({
      state: { dir: join(root, 'state') },
      targets: {
        postgres: [{ name: 'main', url: server.url('postgres') }],
        backups: [{ name: 'refnet', dir, pattern: 'refnet_*', source: { target: 'main', database: 'refnet' } }],
      },
    });
    t.teardown(() => failing.close());
    const params = await pgDump.resolve(pgDump.params.parse({ backup: 'refnet', jobs: 2 }), failing);
    const plan = await pgDump.plan(params, failing);
    await server.query('alter database refnet allow_connections false');
    t.teardown(() => server.query('alter database refnet allow_connections true'));
    await t.rejects(pgDump.run(params, plan.payload, failing), { message: /^pg_dump exited with 1: pg_dump: error: connection to server .* failed: FATAL: {2}database "refnet" is not currently accepting connections/ });
    t.notOk((await readdir(dir)).some((name) => name.endsWith('.partial')), 'no partial directory is left');
  });
});

t.test('a role with only pg_read_all_data and CREATEDB dumps in parallel and verifies the directory dump', async (t) => {
  const password = 'pw-dirdump-role-8e2a';
  const server = await startPostgres({ passwordRoles: ['upkeep_backup'] });
  t.teardown(() => server.destroy());
  await makeOwnedDatabase(server, 'owned', 'upkeep_backup', password, 20_000);
  const root = await mkdtemp(join(tmpdir(), 'upkeep-dirdump-role-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const context = buildContext({
    state: { dir: join(root, 'state') },
    targets: {
      postgres: [{ name: 'main', url: `postgres://upkeep_backup@127.0.0.1:${server.port}/postgres?password=${password}` }],
      backups: [{ name: 'owned', dir: join(root, 'backups'), pattern: 'owned_*', source: { target: 'main', database: 'owned' } }],
    },
  });
  t.teardown(() => context.close());
  const dumped = await perform(pgDump, { backup: 'owned', jobs: 3 }, context);
  t.equal(dumped.verification.ok, true, dumped.verification.detail);
  const verified = await perform(backupVerify, { backup: 'owned', maxRowDifferenceRatio: 0 }, context);
  t.equal(verified.verification.ok, true, verified.verification.detail);
  t.match(verified.output.detail, { tables: 1, rows: 20_000, comparedWithSource: true, problems: [] });
  for (const step of [...dumped.plan, ...verified.plan]) t.notMatch(step.detail, password, 'no plan shows the password');
  t.notMatch(JSON.stringify([dumped.output, verified.output]), password, 'nor any output');
});
