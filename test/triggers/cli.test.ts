import { EventEmitter } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { main } from '../../src/cli.js';
import { exitCodeFor, formatRun, parseParams, runFromCli } from '../../src/triggers/cli.js';
import { waitFor } from '../fixtures/ports.js';
import { capturedLogger, journalLines, tempDir, testConfig } from '../http/helpers.js';
import { holdTable, startTestPostgres, tableStats, tableWithDeadTuples } from '../actions/postgres-fixture.js';

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (line: string) => out.push(line), err: (line: string) => err.push(line), env: {} } };
}

t.test('upkeep run: same engine, guards and journal; prints the plan and the result', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await tableWithDeadTuples(server, 'app', 'orders');
  const stateDir = await tempDir(t);
  const configFile = join(stateDir, 'upkeep.yml');
  await writeFile(configFile, stringify({ state: { dir: stateDir }, targets: { postgres: [{ name: 'main', url: server.url('app') }] } }));
  const vacuum = ['run', 'postgres.vacuum', '--param', 'target=main', '--param', 'database=app', '--param', 'table=public.orders', '--config', configFile];

  const dry = io();
  t.equal(await main([...vacuum, '--dry-run'], dry.io), 0);
  t.match(dry.out.join('\n'), /\(cli, dry run\)\nplan:\n {2}sql: VACUUM \(ANALYZE\) "public"."orders"\nstatus: dry_run/);
  t.equal((await tableStats(server, 'app', 'orders')).vacuumCount, 0, 'the dry run changed nothing');

  const real = io();
  t.equal(await main([...vacuum, '--param', 'analyze=false'], real.io), 0);
  t.match(real.out.join('\n'), /sql: VACUUM "public"."orders"\nstatus: success\nverification: ok: public\.orders: dead tuples 400 -> 0/);
  t.equal((await tableStats(server, 'app', 'orders')).vacuumCount, 1);

  const skipped = io();
  t.equal(await main(vacuum, skipped.io), 0, 'a skip is not an error');
  t.match(skipped.out.join('\n'), /status: skipped\nreason: condition cleared/);

  const rejected = io();
  t.equal(await main(['run', 'postgres.vacuum', '--param', 'target=main', '--param', 'database=app', '--param', 'table=public.nope', '--config', configFile], rejected.io), 1);
  t.match(rejected.out.join('\n'), /status: rejected\nreason: table "public.nope" does not exist in main\/app/);

  // A system catalog only when the operator says so: refused by default, planned with allowSystemCatalogs=true.
  const catalog = ['run', 'postgres.analyze', '--param', 'target=main', '--param', 'database=app', '--param', 'table=pg_catalog.pg_class', '--config', configFile];
  const refused = io();
  t.equal(await main(catalog, refused.io), 1);
  t.match(refused.out.join('\n'), /status: rejected\nreason: pg_catalog\.pg_class is in the system schema pg_catalog; upkeep acts only on user tables \(a manual or CLI run can go further with allowSystemCatalogs: true\)/);
  const allowed = io();
  t.equal(await main([...catalog, '--param', 'allowSystemCatalogs=true', '--dry-run'], allowed.io), 0);
  t.match(allowed.out.join('\n'), /plan:\n {2}sql: ANALYZE "pg_catalog"\."pg_class"\nstatus: dry_run/);

  const statuses = [...new Map((await journalLines(stateDir)).map((line) => [line.id, line.status])).values()];
  t.same(statuses, ['dry_run', 'success', 'skipped', 'rejected', 'rejected', 'dry_run'], 'every CLI run is in the journal');

  const usage = io();
  t.equal(await main(['run', '--config', configFile], usage.io), 2);
  t.match(usage.err.join('\n'), /which remediation/);
  const badParam = io();
  t.equal(await main(['run', 'postgres.vacuum', '--param', 'novalue', '--config', configFile], badParam.io), 2);
  t.match(badParam.err.join('\n'), /--param "novalue" must look like key=value/);
});

t.test('parseParams, formatRun and exit codes', async (t) => {
  t.same(parseParams(['a=1', 'b=x=y']), { a: '1', b: 'x=y' });
  t.throws(() => parseParams(['=v']), /must look like key=value/);
  t.throws(() => parseParams(['keepDays=30', 'backup=x', 'keepDays=3']), { message: '--param "keepDays" is given twice; give each key once' });
  const proto = parseParams(['__proto__=x']);
  t.same(Object.keys(proto), ['__proto__'], 'a key named __proto__ is kept as a key (the params check then refuses it), not dropped');
  t.equal(Object.getPrototypeOf(proto), Object.prototype);
  const base = { id: 'r1', remediation: 'postgres.vacuum', trigger: 'cli' as const, params: {}, queuedAt: '2024-01-01T00:00:00Z' };
  t.same(formatRun({ ...base, status: 'failure', error: 'boom', verification: { ok: false, detail: 'no' } }), [
    'run r1: postgres.vacuum (cli)', 'status: failure', 'verification: FAILED: no', 'error: boom',
  ]);
  t.same(formatRun({
    ...base, remediation: 'files.cleanup', status: 'failure', error: 'EACCES: permission denied',
    plan: [{ kind: 'file', detail: 'unlink /tmp/x/a\nb.tmp' }], output: { deleted: 3, bytes: 12 },
  }), [
    'run r1: files.cleanup (cli)', 'plan:', '  file: unlink /tmp/x/a\\nb.tmp', 'status: failure', 'error: EACCES: permission denied',
    'done before it stopped: {"deleted":3,"bytes":12}',
  ], 'a newline in a name is printed as \\n; what a failed run had done is printed');
  t.same(formatRun({ ...base, status: 'success', output: { deleted: 3 } }), ['run r1: postgres.vacuum (cli)', 'status: success'], 'a success\'s output is its verification\'s to say');
  t.same(['success', 'dry_run', 'skipped', 'failure', 'rejected', 'interrupted'].map((status) => exitCodeFor({ ...base, status: status as 'success' })), [0, 0, 0, 1, 1, 1]);
});

t.test('runFromCli: SIGHUP lets the run go on; SIGINT stops it (interrupted, exit 1); the listeners go with it', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await tableWithDeadTuples(server, 'app', 'orders');
  await holdTable(t, server, 'app', 'orders');
  const config = testConfig({ state: { dir: await tempDir(t) }, targets: { postgres: [{ name: 'main', url: server.url('app') }] }, remediation: { lockTimeoutSeconds: 600 } });
  const logged = capturedLogger('info');
  const signals = new EventEmitter();
  const out: string[] = [];
  const running = runFromCli(config, logged.log, { remediation: 'postgres.vacuum', params: { target: 'main', database: 'app', table: 'public.orders' }, dryRun: false }, (line) => out.push(line), signals);
  await waitFor('the VACUUM to wait for the table', async () => {
    if ((await server.query("select pid from pg_stat_activity where query like 'VACUUM%' and application_name like 'upkeep:%'")).length !== 1) throw new Error('not yet');
  }, 30_000, 50);
  // A hang-up lets the run go on: its VACUUM still waits half a second later.
  signals.emit('SIGHUP', 'SIGHUP');
  await new Promise((resolve) => setTimeout(resolve, 500));
  t.equal((await server.query("select pid from pg_stat_activity where query like 'VACUUM%' and application_name like 'upkeep:%'")).length, 1, 'SIGHUP did not stop the run');
  signals.emit('SIGINT', 'SIGINT');
  t.equal(await running, 1);
  t.match(out.join('\n'), /\nstatus: interrupted\nreason: upkeep shut down during the run\n/);
  t.match(logged.lines().filter((line) => line.level === 40), [
    { signal: 'SIGHUP', msg: 'SIGHUP ignored: the run goes on; its outcome is journalled (GET /runs)' },
    { signal: 'SIGINT', msg: 'stopping the run (send the signal again to exit at once)' },
  ]);
  t.same(['SIGINT', 'SIGTERM', 'SIGHUP'].map((signal) => signals.listenerCount(signal)), [0, 0, 0], 'no listener left behind');
});
