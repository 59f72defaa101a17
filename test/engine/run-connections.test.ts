import t from 'tap';
import { DRY_RUN_APPLICATION, RunConnections } from '../../src/engine/run-connections.js';
import { Connections } from '../../src/systems/connections.js';
import { startTestPostgres } from '../actions/postgres-fixture.js';
import { bufferLogger } from '../fixtures/log.js';
import { waitFor } from '../fixtures/ports.js';
import { testConfig } from '../http/helpers.js';

t.test("a dry run's sessions come from a pool and serve the next dry run; a real run's are its own, tagged, and ended with it", async (t) => {
  const server = await startTestPostgres(t);
  const config = testConfig({ targets: { postgres: [{ name: 'main', url: server.url('postgres') }] } });
  const shared = new Connections(config);
  t.teardown(() => shared.close());
  const captured = bufferLogger();
  const runConnections = (runId: string, dryRun: boolean) => new RunConnections(config, shared, Date.now() + 60_000, 30_000, captured.log, runId, dryRun);
  const session = async (connections: RunConnections) => {
    const client = await connections.postgres('main', 'postgres');
    const { rows: [row] } = await client.query<{ pid: number; app: string; timeout: string }>(
      "select pg_backend_pid() as pid, current_setting('application_name') as app, current_setting('statement_timeout') as timeout");
    await client.end();
    if (!row) throw new Error('no row');
    return row;
  };
  const alive = async (pid: number) => (await server.query('select 1 from pg_stat_activity where pid = $1', [pid])).length > 0;

  const first = runConnections('run-dry-1', true);
  const dry = await session(first);
  t.equal(dry.app, DRY_RUN_APPLICATION, 'not tagged with the run: it will serve other runs');
  t.not(dry.timeout, '0', "the statement timeout is bounded by the run's deadline");
  t.same(first.openBackends(), [], "a pooled session is never signalled at the deadline: another run may hold it by then");
  await first.close();
  t.ok(await alive(dry.pid), 'the session stays open in the pool after the run');

  const second = runConnections('run-dry-2', true);
  t.equal((await session(second)).pid, dry.pid, 'the next dry run reuses it instead of opening one');
  await second.close(true);
  await waitFor('the session of an aborted dry run to be closed rather than lent again', async () => { if (await alive(dry.pid)) throw new Error('still open'); });

  const real = runConnections('run-real', false);
  const own = await session(real);
  t.equal(own.app, 'upkeep:run-real', 'a real run tags its session, so a replica can cut off what a dead run left working');
  t.same(real.openBackends(), [{ target: 'main', database: 'postgres', pid: own.pid }]);
  await real.close();
  await waitFor("the real run's session to end with it", async () => { if (await alive(own.pid)) throw new Error('still open'); });
  t.equal(captured.text(), '', 'nothing logged');
});

t.test("at the deadline a real run's statement is cancelled from a second session; Redis and Docker are the engine's shared clients", async (t) => {
  const server = await startTestPostgres(t);
  const config = testConfig({ targets: { postgres: [{ name: 'main', url: server.url('postgres') }] } });
  const shared = new Connections(config);
  t.teardown(() => shared.close());
  const connections = new RunConnections(config, shared, Date.now() + 60_000, 30_000, bufferLogger().log, 'run-slow');
  t.teardown(() => connections.close());
  const client = await connections.postgres('main', 'postgres');
  const sleeping = client.query('select pg_sleep(60)');
  await waitFor('the statement to run', async () => {
    if ((await server.query("select 1 from pg_stat_activity where application_name = 'upkeep:run-slow' and state = 'active'")).length === 0) throw new Error('not yet');
  });
  const cancelling = connections.cancelBackends();
  await t.rejects(sleeping, { message: 'canceling statement due to user request' });
  await cancelling;
  t.throws(() => connections.docker('nowhere'), { message: 'unknown docker target "nowhere"' });
  await t.rejects(connections.redis('nowhere'), { message: 'unknown redis target "nowhere"' });
});

t.test('when the target cannot be reached at the deadline, the failure to cancel is logged with the backends left', async (t) => {
  const server = await startTestPostgres(t);
  const config = testConfig({ targets: { postgres: [{ name: 'main', url: server.url('postgres') }] } });
  const shared = new Connections(config);
  t.teardown(() => shared.close());
  const captured = bufferLogger();
  const connections = new RunConnections(config, shared, Date.now() + 60_000, 30_000, captured.log, 'run-gone');
  t.teardown(() => connections.close());
  const client = await connections.postgres('main', 'postgres');
  const [{ pid } = { pid: 0 }] = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows;
  await server.stop('immediate');
  // The grace before terminating is an unref'd timer: with the server gone nothing else keeps this process up.
  const keepAlive = setInterval(() => undefined, 1000);
  await connections.cancelBackends().finally(() => clearInterval(keepAlive));
  const lines = captured.text().trim().split('\n').map((line) => JSON.parse(line) as { level: number; msg: string; pids: number[]; target: string });
  t.same(lines.map(({ level, msg, pids, target }) => ({ level, msg, pids, target })), [
    { level: 50, msg: 'pg_cancel_backend failed; backends may still be running', pids: [pid], target: 'main' },
    { level: 50, msg: 'pg_terminate_backend failed; backends may still be running', pids: [pid], target: 'main' },
  ]);
});

t.test('a session whose timeouts cannot be set is not handed out, and a pooled one is not lent again', async (t) => {
  const server = await startTestPostgres(t);
  const config = testConfig({ targets: { postgres: [{ name: 'main', url: server.url('postgres') }] } });
  const shared = new Connections(config);
  t.teardown(() => shared.close());
  // No number for the deadline: Postgres refuses "NaNms" as a statement_timeout.
  for (const dryRun of [false, true]) {
    const connections = new RunConnections(config, shared, Number.NaN, 30_000, bufferLogger().log, `run-${dryRun}`, dryRun);
    await t.rejects(connections.postgres('main', 'postgres'), { message: 'invalid value for parameter "statement_timeout": "NaNms"' });
    t.same(connections.openBackends(), []);
    await connections.close();
  }
  await waitFor('no session of ours left open', async () => {
    const left = await server.query("select application_name from pg_stat_activity where application_name like 'upkeep%'");
    if (left.length > 0) throw new Error(`still open: ${JSON.stringify(left)}`);
  });
});

t.test("a pooled session keeps the timeouts an earlier dry run set when they end its statements before its deadline, at most a tenth sooner", async (t) => {
  const server = await startTestPostgres(t);
  const config = testConfig({ targets: { postgres: [{ name: 'main', url: server.url('postgres') }] } });
  const shared = new Connections(config);
  t.teardown(() => shared.close());
  const timeoutOf = async (deadlineInMs: number) => {
    const connections = new RunConnections(config, shared, Date.now() + deadlineInMs, 30_000, bufferLogger().log, `run-${deadlineInMs}`, true);
    const client = await connections.postgres('main', 'postgres');
    const { rows: [row] } = await client.query<{ pid: number; ms: string }>("select pg_backend_pid() as pid, setting as ms from pg_settings where name = 'statement_timeout'");
    await connections.close();
    if (!row) throw new Error('no row');
    return { pid: row.pid, ms: Number(row.ms) };
  };
  const first = await timeoutOf(60_000);
  t.ok(first.ms > 55_000 && first.ms <= 60_000, `set for the first run: ${first.ms} ms`);
  const kept = await timeoutOf(62_000);
  t.same(kept, first, "the next run's deadline is later and within a tenth: the same session keeps the same timeout, no SET");
  const shorter = await timeoutOf(30_000);
  t.equal(shorter.pid, first.pid, 'the same pooled session');
  t.ok(shorter.ms <= 30_000, `a run with less time left sets its own: ${shorter.ms} ms`);
  const longer = await timeoutOf(200_000);
  t.ok(longer.ms > 180_000, `and a run with far more time left does too, rather than end its statements early: ${longer.ms} ms`);
});
