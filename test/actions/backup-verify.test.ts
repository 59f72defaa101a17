import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, stat, truncate, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import t, { type Test } from 'tap';
import { z } from 'zod';
import { pgDump } from '../../src/actions/backup.js';
import { backupVerify, compareCounts, scratchPrefix } from '../../src/actions/backup-verify.js';
import { ValidationError } from '../../src/errors.js';
import { readVerify } from '../../src/systems/files/verify-ledger.js';
import { startPostgres } from '../fixtures/postgres.js';
import { makeDatabase, makeOwnedDatabase } from './backup-fixture.js';
import { buildContext, perform, testConfig } from './context.js';
import { asNobody } from '../fixtures/as-nobody.js';

t.test('pure parts', async (t) => {
  const table = (schema: string, name: string, rows: number) => ({ schema, name, rows });
  t.same(compareCounts([table('public', 'a', 100), table('public', 'b', 5)], [table('public', 'a', 105), table('public', 'c', 1)], 0.1), [
    { table: '"public"."b"', restored: 5, source: null },
    { table: '"public"."c"', restored: null, source: 1 },
  ]);
  t.same(compareCounts([table('public', 'a', 100)], [table('public', 'a', 105)], 0), [{ table: '"public"."a"', restored: 100, source: 105 }]);
  t.same(compareCounts([table('public', 'a', 0)], [table('public', 'a', 0)], 0), []);
  t.equal(scratchPrefix('RefNet-main'), 'upkeep_verify_refnet_main_');
  t.ok(scratchPrefix('x'.repeat(100)).length <= 50, 'room left for the timestamp within 63 characters');
  t.equal(backupVerify.params.parse({ backup: 'x', maxRowDifferenceRatio: '0.25' }).maxRowDifferenceRatio, 0.25);
  t.equal(backupVerify.risk(backupVerify.params.parse({ backup: 'x' })), 'safe');
  const withBackup = testConfig({ targets: { postgres: [{ name: 'main', url: 'postgres://127.0.0.1/x' }], backups: [{ name: 'x', dir: '/tmp', pattern: 'x_*.sql.gz', source: { target: 'main', database: 'app' } }] } });
  t.same(backupVerify.lock(backupVerify.params.parse({ backup: 'x' }), withBackup), pgDump.lock(pgDump.params.parse({ backup: 'x' }), withBackup), 'verify and dump of one backup never overlap');
  t.same(pgDump.lock(pgDump.params.parse({ backup: 'x' }), withBackup), { kind: 'postgres', target: 'main', database: 'app', key: 'backup:x' }, 'across replicas: an advisory lock on the source server');
  // Refused before the run is queued: a 400 for a manual run, `ignored` for an alert.
  const screen = (backup: string, config = withBackup) => () => backupVerify.screen?.(backupVerify.params.parse({ backup }), config, 'alert');
  t.throws(screen('nope'), new ValidationError('unknown backup "nope" (not in targets.backups)'));
  const sourceless = testConfig({ targets: { backups: [{ name: 'files', dir: '/tmp', pattern: 'files_*.tar.gz' }] } });
  t.throws(screen('files', sourceless), new ValidationError('backup "files" has no source: set targets.backups[files].source { target, database }'));
  t.doesNotThrow(screen('x'));
});

const outputShape = z.object({ file: z.string(), scratchDatabase: z.string(), droppedStale: z.array(z.string()), tables: z.number(), rows: z.number(), comparedWithSource: z.boolean(), problems: z.array(z.unknown()) });

t.test('backup.verify against a real server', async (t) => {
  const server = await startPostgres();
  t.teardown(() => server.destroy());
  await makeDatabase(server, 'refnet', 20);
  const root = await mkdtemp(join(tmpdir(), 'upkeep-verify-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const dir = join(root, 'backups');
  const state = join(root, 'state');
  const context = buildContext({
    state: { dir: state },
    targets: {
      postgres: [{ name: 'main', url: server.url('postgres') }],
      backups: [
        { name: 'refnet', dir, pattern: 'refnet_*.sql.gz', source: { target: 'main', database: 'refnet' } },
        // Its own directory, holding a copy of refnet's dump: one pattern for two entries in one directory is a config error.
        { name: 'elsewhere', dir: join(root, 'elsewhere'), pattern: 'elsewhere_*.sql.gz', source: { target: 'main', database: 'dropped_since' } },
        { name: 'empty', dir: join(root, 'none'), pattern: 'empty_*.sql.gz', source: { target: 'main', database: 'refnet' } },
      ],
    },
  });
  t.teardown(() => context.close());
  const scratchDatabases = async () => (await server.query<{ datname: string }>("select datname from pg_database where datname like 'upkeep_verify_%'")).map((row) => row.datname);
  const dumped = await perform(pgDump, { backup: 'refnet' }, context);
  const good = String(dumped.output.detail.file);
  // The good dump is a minute old, so each broken copy written below is the newest backup.
  await utimes(good, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
  await mkdir(join(root, 'elsewhere'));
  await copyFile(good, join(root, 'elsewhere', basename(good).replace(/^refnet_/, 'elsewhere_')));

  t.test('a good backup restores, matches the source exactly, and is recorded', async (t) => {
    const result = await perform(backupVerify, { backup: 'refnet', maxRowDifferenceRatio: 0 }, context);
    const output = outputShape.parse(result.output.detail);
    t.equal(output.file, good.split('/').at(-1));
    t.equal(output.tables, 5);
    t.equal(output.rows, 1000 + 10 + 5000 + Math.round((20 * 1024 * 1024) / 200));
    t.equal(output.comparedWithSource, true);
    t.same(output.problems, []);
    t.equal(result.verification.ok, true);
    t.match(result.verification.detail, /restored: 5 tables, row counts match the source$/);
    const ledger = await readVerify(state, 'refnet');
    t.equal(ledger?.file, output.file);
    t.ok(Math.abs((ledger?.timestamp ?? 0) - Date.now() / 1000) < 600);
    t.same(await scratchDatabases(), []);
    t.same(result.plan.map((step) => step.kind), ['sql', 'exec', 'sql', 'exec', 'sql', 'sql']);
    t.match(result.plan[3]?.detail, /gzip -dc -- .*refnet_\d{8}_\d{6}\.sql\.gz \| .*psql --no-psqlrc --quiet --no-password --set ON_ERROR_STOP=1 --dbname postgres:\/\/postgres@127\.0\.0\.1:\d+\/upkeep_verify_refnet_/);
  });

  t.test('row counts that drifted beyond the ratio fail the verification and are not recorded', async (t) => {
    const recorded = await readVerify(state, 'refnet');
    await server.query('insert into app.small select g, $1 from generate_series(11, 20) g', ['later'], 'refnet');
    t.teardown(() => server.query('delete from app.small where id > 10', [], 'refnet'));
    const result = await perform(backupVerify, { backup: 'refnet' }, context);
    t.equal(result.verification.ok, false);
    t.match(result.verification.detail, /"app"\."small": restored 10, source 20/);
    t.same(await readVerify(state, 'refnet'), recorded);
    const tolerant = await perform(backupVerify, { backup: 'refnet', maxRowDifferenceRatio: 0.5 }, context);
    t.equal(tolerant.verification.ok, true, 'within the allowed drift');
  });

  t.test('an unreachable source falls back to a catalog sanity check', async (t) => {
    const result = await perform(backupVerify, { backup: 'elsewhere' }, context);
    const output = outputShape.parse(result.output.detail);
    t.equal(output.comparedWithSource, false);
    t.match(result.output.detail.sourceError, /database "dropped_since" does not exist/);
    t.equal(result.verification.ok, true);
    t.match(result.verification.detail, /source unreachable, catalog sanity check only$/);
  });

  const broken = join(dir, 'refnet_20990101_000000.sql.gz');
  const failsCleanly = async (t: Test, pattern: RegExp) => {
    await t.rejects(perform(backupVerify, { backup: 'refnet' }, context), pattern);
    t.same(await scratchDatabases(), [], 'no scratch database is left behind');
  };

  t.test('a truncated backup fails with a clear error', async (t) => {
    await writeFile(broken, await readFile(good));
    await truncate(broken, Math.floor((await stat(broken)).size * 0.6));
    await failsCleanly(t, /^refnet_20990101_000000\.sql\.gz is corrupt or truncated: unexpected end of file$/);
  });

  t.test('a corrupted backup fails with a clear error', async (t) => {
    const bytes = await readFile(good);
    for (let offset = 4096; offset < 4096 + 64; offset++) bytes[offset] = (bytes[offset] ?? 0) ^ 0xff;
    await writeFile(broken, bytes);
    await failsCleanly(t, /refnet_20990101_000000\.sql\.gz is corrupt or truncated: invalid compressed data/);
  });

  t.test('a dump that was cut short at a clean gzip boundary fails', async (t) => {
    await writeFile(broken, gzipSync('create table half (id int);\n'));
    await failsCleanly(t, /refnet_20990101_000000\.sql\.gz is incomplete: it does not end with "-- PostgreSQL database dump complete"/);
  });

  t.test('a statement that fails during the restore fails the run, and the scratch database is dropped', async (t) => {
    await writeFile(broken, gzipSync('create table ok (id int);\nselect * from no_such_table;\n--\n-- PostgreSQL database dump complete\n--\n'));
    await failsCleanly(t, /restoring refnet_20990101_000000\.sql\.gz failed \(psql exit 3\): .*relation "no_such_table" does not exist/);
    await unlink(broken);
  });

  t.test('a scratch database left by a crashed verify is dropped first', async (t) => {
    const leftover = `${scratchPrefix('refnet')}crashed`;
    await server.query(`create database ${leftover}`);
    const result = await perform(backupVerify, { backup: 'refnet' }, context);
    t.same(result.output.detail.droppedStale, [leftover]);
    t.same(await scratchDatabases(), []);
  });

  t.test('nothing to verify, unknown backups', async (t) => {
    const params = await backupVerify.resolve(backupVerify.params.parse({ backup: 'empty' }), context);
    await t.rejects(backupVerify.check(params, context), /no valid backup matching empty_\*\.sql\.gz in .*none: nothing to verify \(run backup\.pg_dump first\)$/);
    // The only dump written with umask 077 by another user (root): the reason is named, not "run it first".
    if (process.getuid?.() !== 0) return;
    await chmod(root, 0o755);
    await mkdir(join(root, 'none'), { recursive: true, mode: 0o755 });
    const foreign = join(root, 'none', 'empty_20260101_020000.sql.gz');
    await writeFile(foreign, gzipSync('-- PostgreSQL database dump complete\n'), { mode: 0o600 });
    t.teardown(() => rm(join(root, 'none'), { recursive: true, force: true }));
    await t.rejects(asNobody(() => backupVerify.check(params, context)), { message: `no valid backup matching empty_*.sql.gz in ${join(root, 'none')}: nothing to verify (upkeep's user may not read ${foreign})` });
    await t.rejects(backupVerify.resolve(backupVerify.params.parse({ backup: 'nope' }), context), ValidationError);
    const verification = await backupVerify.verify(params, { proceed: true, reason: '' }, { detail: { file: 'x', scratchDatabase: 'upkeep_verify_none', droppedStale: [], tables: 0, rows: 0, comparedWithSource: false, problems: [] } }, context);
    t.equal(verification.ok, false);
    t.match(verification.detail, /the restore produced no tables/);
  });
});

t.test('a role with only pg_read_all_data and CREATEDB, logging in with a password, dumps and verifies', async (t) => {
  const password = 'pw-verify-role-5d1c';
  const server = await startPostgres({ passwordRoles: ['upkeep_backup'] });
  t.teardown(() => server.destroy());
  // Enough rows that psql stopping early leaves gzip and sed writing into a closed pipe.
  await makeOwnedDatabase(server, 'owned', 'upkeep_backup', password, 100_000);
  const root = await mkdtemp(join(tmpdir(), 'upkeep-verify-role-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const context = buildContext({
    state: { dir: join(root, 'state') },
    targets: {
      postgres: [{ name: 'main', url: `postgres://upkeep_backup@127.0.0.1:${server.port}/postgres?password=${password}` }],
      backups: [{ name: 'owned', dir: join(root, 'backups'), pattern: 'owned_*.sql.gz', source: { target: 'main', database: 'owned' } }],
    },
  });
  t.teardown(() => context.close());
  const dumped = await perform(pgDump, { backup: 'owned' }, context);
  t.equal(dumped.verification.ok, true, dumped.verification.detail);
  const sql = gunzipSync(await readFile(String(dumped.output.detail.file))).toString();
  for (const kept of ['ALTER TABLE app.users OWNER TO app_owner;', 'GRANT SELECT ON TABLE app.users TO reporting;', 'CREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA public;']) {
    t.ok(sql.includes(kept), `the backup keeps "${kept}"`);
  }
  for (const step of dumped.plan) t.notMatch(step.detail, password, 'the plan never shows the password');

  t.test('the restore leaves out owners and grants the role cannot set, and the counts match', async (t) => {
    const result = await perform(backupVerify, { backup: 'owned', maxRowDifferenceRatio: 0 }, context);
    t.equal(result.verification.ok, true, result.verification.detail);
    t.match(result.output.detail, { tables: 1, rows: 100_000, comparedWithSource: true, problems: [] });
    t.match(result.plan[3]?.detail, /gzip -dc -- .*owned_\d{8}_\d{6}\.sql\.gz \| .*sed -E -e '.*' -e '.*OWNER TO.*' \| .*psql --no-psqlrc --quiet --no-password --set ON_ERROR_STOP=1 --dbname postgres:\/\/upkeep_backup@127\.0\.0\.1:\d+\/upkeep_verify_owned_\w+$/);
    for (const step of result.plan) t.notMatch(step.detail, password);
  });

  t.test('an extension only a superuser can create fails the verify with psql\'s own error', async (t) => {
    await server.query('create extension pageinspect', [], 'owned');
    t.teardown(() => server.query('drop extension pageinspect', [], 'owned'));
    await perform(pgDump, { backup: 'owned' }, context);
    await t.rejects(perform(backupVerify, { backup: 'owned' }, context), {
      message: /^restoring owned_\d{8}_\d{6}\.sql\.gz failed \(psql exit 3\): ERROR: {2}permission denied to create extension "pageinspect"\nHINT: {2}Must be superuser to create this extension\. \(the restore runs as the role of postgres target "main"; docs\/security\.md lists what backup\.verify needs\)$/,
    });
    t.same(await server.query("select datname from pg_database where datname like 'upkeep_verify_%'"), [], 'the scratch database is dropped');
  });
});
