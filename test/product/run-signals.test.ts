import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { runRecordSchema } from '../../src/engine/journal.js';
import { waitFor } from '../fixtures/ports.js';
import { tempDir } from '../http/helpers.js';
import { holdTable, startTestPostgres, tableStats, tableWithDeadTuples } from '../actions/postgres-fixture.js';
import type { PostgresServer } from '../../src/demo/servers/postgres.js';
import { spawnInstalled, writeConfig } from './installed.js';

/**
 * A signal to `upkeep run` while its run waits on a table another session holds: before, node's
 * default ended the process at once, so the journal kept the run `running`, a half-written
 * backup stayed behind and nothing was printed. Now SIGINT or SIGTERM stops the run as a shutdown
 * stops it, journalled and printed, and the process exits 1; SIGHUP lets it go on (`nohup`).
 */
async function lockedTable(t: Test): Promise<PostgresServer & { release(): Promise<void> }> {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await tableWithDeadTuples(server, 'app', 'orders');
  return { ...server, release: await holdTable(t, server, 'app', 'orders') };
}

/** Starts the installed `upkeep run ARGS`, waits until `waiting()` holds, sends `signal`, and returns what it printed and how it ended. */
async function stopRun(args: readonly string[], waiting: () => Promise<boolean>, signal: NodeJS.Signals) {
  const { child, exited, stdout, stderr } = await spawnInstalled(['run', ...args]);
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  try {
    await waitFor('the run to wait for the table', async () => {
      if (child.exitCode !== null) throw new Error(`exited early: ${stdout()}${stderr()}`);
      if (!(await waiting())) throw new Error('not waiting yet');
    }, 30_000, 100);
    const signalled = Date.now();
    child.kill(signal);
    const [code, killedBy] = await exited;
    return { code, killedBy, stdout: stdout(), stderr: stderr(), seconds: (Date.now() - signalled) / 1000 };
  } finally {
    clearTimeout(killer);
  }
}

async function journalled(stateDir: string, id: string) {
  const dir = join(stateDir, 'journal');
  const lines = [];
  for (const segment of (await readdir(dir)).filter((name) => name.endsWith('.jsonl')).sort()) {
    for (const line of (await readFile(join(dir, segment), 'utf8')).split('\n')) if (line.trim() !== '') lines.push(runRecordSchema.parse(JSON.parse(line)));
  }
  return lines.filter((record) => record.id === id).at(-1);
}

const runId = (stdout: string) => /^run (\S+): /m.exec(stdout)?.[1] ?? '';

t.test('SIGINT to upkeep run during a VACUUM: the statement is cancelled, the run journalled interrupted, exit 1', async (t) => {
  const server = await lockedTable(t);
  const { file, dir } = await writeConfig(t, { targets: { postgres: [{ name: 'main', url: server.url('app') }] }, remediation: { lockTimeoutSeconds: 600 } });
  const vacuums = async () => server.query("select pid from pg_stat_activity where query like 'VACUUM%' and application_name like 'upkeep:%'");
  const stopped = await stopRun(['postgres.vacuum', '--param', 'target=main', '--param', 'database=app', '--param', 'table=public.orders', '--config', file],
    async () => (await vacuums()).length === 1, 'SIGINT');
  t.same([stopped.code, stopped.killedBy], [1, null], `exit 1, not killed by the signal: ${stopped.stderr}`);
  t.ok(stopped.seconds < 15, `stopped in ${stopped.seconds} s`);
  t.match(stopped.stdout, /^status: interrupted$/m, stopped.stdout);
  t.match(stopped.stdout, /^reason: upkeep shut down during the run$/m);
  t.match(stopped.stderr, /"signal":"SIGINT","msg":"stopping the run \(send the signal again to exit at once\)"/);
  t.same(await vacuums(), [], 'the VACUUM was cancelled, not left waiting');
  t.equal((await tableStats(server, 'app', 'orders')).vacuumCount, 0);
  t.match(await journalled(join(dir, 'state'), runId(stopped.stdout)), { status: 'interrupted', trigger: 'cli', remediation: 'postgres.vacuum' }, 'the journal says so');
});

t.test('SIGTERM to upkeep run during a backup: pg_dump ends and no partial file is left', async (t) => {
  const server = await lockedTable(t);
  const backups = join(await tempDir(t), 'backups');
  const { file, dir } = await writeConfig(t, {
    targets: {
      postgres: [{ name: 'main', url: server.url('app') }],
      backups: [{ name: 'app', dir: backups, pattern: 'app_*.sql.gz', keepDays: 7, source: { target: 'main', database: 'app' } }],
    },
  });
  // pg_dump takes a share lock on each table it dumps: it waits behind the locker.
  const dumps = async () => server.query("select pid from pg_stat_activity where application_name = 'pg_dump' and wait_event_type = 'Lock'");
  const stopped = await stopRun(['backup.pg_dump', '--param', 'backup=app', '--config', file], async () => (await dumps()).length === 1, 'SIGTERM');
  t.same([stopped.code, stopped.killedBy], [1, null], `exit 1: ${stopped.stderr}`);
  t.match(stopped.stdout, /^status: interrupted$/m, stopped.stdout);
  await waitFor('pg_dump to be gone', async () => { if ((await server.query("select pid from pg_stat_activity where application_name = 'pg_dump'")).length > 0) throw new Error('still there'); }, 10_000, 100);
  t.same(await readdir(backups), [], 'no partial file left');
  t.match(await journalled(join(dir, 'state'), runId(stopped.stdout)), { status: 'interrupted', remediation: 'backup.pg_dump' });
});

t.test('SIGHUP to upkeep run (a closed terminal, or nohup) lets the run go on to its end', async (t) => {
  const server = await lockedTable(t);
  const { file, dir } = await writeConfig(t, { targets: { postgres: [{ name: 'main', url: server.url('app') }] }, remediation: { lockTimeoutSeconds: 600 } });
  const vacuums = async () => server.query("select pid from pg_stat_activity where query like 'VACUUM%' and application_name like 'upkeep:%'");
  const { child, exited, stdout, stderr } = await spawnInstalled(['run', 'postgres.vacuum', '--param', 'target=main', '--param', 'database=app', '--param', 'table=public.orders', '--config', file]);
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  await waitFor('the VACUUM to wait for the table', async () => { if ((await vacuums()).length !== 1) throw new Error('not yet'); }, 30_000, 100);
  child.kill('SIGHUP');
  await waitFor('the hang-up to be logged', async () => { if (!stderr().includes('SIGHUP ignored')) throw new Error(`not yet: ${stderr()}`); }, 10_000, 50);
  t.equal((await vacuums()).length, 1, 'the VACUUM still waits');
  t.equal(child.exitCode, null, 'upkeep run still runs');
  await server.release();
  const [code, killedBy] = await exited;
  t.same([code, killedBy], [0, null], stderr());
  t.match(stdout(), /^status: success$/m);
  t.equal((await tableStats(server, 'app', 'orders')).vacuumCount, 1, 'vacuumed');
  t.match(await journalled(join(dir, 'state'), runId(stdout())), { status: 'success', trigger: 'cli' });
});
