import pg from 'pg';
import t from 'tap';
import { waitFor } from '../fixtures/ports.js';
import type { PostgresServer } from '../fixtures/postgres.js';
import { capturedLogger, finishedRun, postWebhook, startApp, tempDir, testConfig, VACUUM_RULE, webhookPayload, startMainApp } from '../http/helpers.js';
import { startTestPostgres, tableStats, tableWithDeadTuples } from '../actions/postgres-fixture.js';

/** Another session holding ACCESS EXCLUSIVE on the table until release(). */
async function holdTableLock(server: PostgresServer, database: string, table: string): Promise<{ release(): Promise<void> }> {
  const client = new pg.Client({ connectionString: server.url(database), application_name: 'test-locker' });
  await client.connect();
  await client.query('begin');
  await client.query(`lock table ${table} in access exclusive mode`);
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      await client.query('commit');
      await client.end();
    },
  };
}

async function ourBackends(server: PostgresServer): Promise<{ pid: number; application_name: string; state: string }[]> {
  return server.query("select pid, application_name, state from pg_stat_activity where application_name like 'upkeep%'");
}

t.test('two replicas get the same alert: one VACUUM runs, the other is skipped because of the lock', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await tableWithDeadTuples(server, 'app', 'orders');
  const config = (stateDir: string) => testConfig({
    state: { dir: stateDir },
    targets: { postgres: [{ name: 'main', url: server.url('app') }] },
    remediation: { rules: [VACUUM_RULE] },
  });
  const first = await startApp(t, config(await tempDir(t)));
  const second = await startApp(t, config(await tempDir(t)));
  const lock = await holdTableLock(server, 'app', 'orders');
  t.teardown(() => lock.release());
  const payload = await webhookPayload();

  const firstReply = await postWebhook(first, payload);
  // The first replica now holds the advisory lock and its VACUUM waits for the table lock.
  await waitFor('the first VACUUM to wait for the table lock', async () => {
    const waiting = await server.query("select pid from pg_stat_activity where application_name like 'upkeep:%' and wait_event_type = 'Lock' and query like 'VACUUM%'");
    if (waiting.length !== 1) throw new Error('not waiting yet');
  });
  const [holderRow] = await server.query<{ pid: number }>("select pid from pg_locks where locktype = 'advisory' and granted");
  const lockHolder = holderRow?.pid;
  const secondRun = await finishedRun(second, (await postWebhook(second, payload)).body?.accepted[0]?.runId ?? '');
  t.equal(secondRun.status, 'skipped');
  t.equal(secondRun.skipCode, 'lock');
  const firstRunId = firstReply.body?.accepted[0]?.runId ?? '';
  // Each replica has its own journal here, so the second cannot say which remediation the first ran.
  t.equal(secondRun.reason, `locked: another run holds the lock on postgres.vacuum postgres:main/app:vacuum:"public"."orders" (run ${firstRunId}, backend pid ${lockHolder})`,
    'naming the run whose session holds the lock');

  await lock.release();
  const firstRun = await finishedRun(first, firstReply.body?.accepted[0]?.runId ?? '');
  t.equal(firstRun.status, 'success', firstRun.error ?? '');
  t.equal((await tableStats(server, 'app', 'orders')).vacuumCount, 1, 'exactly one VACUUM ran');
});

t.test('a vacuum blocked by ACCESS EXCLUSIVE fails at lock_timeout and leaves no backend behind', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await tableWithDeadTuples(server, 'app', 'orders');
  const app = await startMainApp(t, server, {
    remediation: { rules: [VACUUM_RULE], lockTimeoutSeconds: 1 },
  });
  const lock = await holdTableLock(server, 'app', 'orders');
  t.teardown(() => lock.release());
  const run = await finishedRun(app, (await postWebhook(app, await webhookPayload())).body?.accepted[0]?.runId ?? '');
  t.equal(run.status, 'failure');
  t.match(run.error, /^could not lock "public"\."orders" within lock_timeout \(1s\): another session holds a conflicting lock; .*canceling statement due to lock timeout/);
  t.same(run.plan, [{ kind: 'sql', detail: 'VACUUM (ANALYZE) "public"."orders"' }], 'the plan is journalled with the failure');
  await waitFor('our backends to go', async () => {
    const left = await ourBackends(server);
    if (left.length > 0) throw new Error(`still there: ${JSON.stringify(left)}`);
  });
  t.same(await ourBackends(server), [], 'no backend of ours in pg_stat_activity');
  t.equal((await tableStats(server, 'app', 'orders')).vacuumCount, 0);
});

t.test('at the run deadline the backend is cancelled and none of ours is left', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await tableWithDeadTuples(server, 'app', 'orders');
  const app = await startMainApp(t, server, {
    remediation: { lockTimeoutSeconds: 600 },
  });
  const lock = await holdTableLock(server, 'app', 'orders');
  t.teardown(() => lock.release());
  const response = await app.fastify.inject({
    method: 'POST', url: '/remediations/postgres.vacuum?wait=true',
    payload: { params: { target: 'main', database: 'app', table: 'public.orders' }, timeoutSeconds: 2 },
  });
  const run = response.json();
  t.equal(run.status, 'failure');
  t.match(run.error, /deadline of 2s passed|statement timeout/);
  await waitFor('our backends to go', async () => {
    const left = await ourBackends(server);
    if (left.length > 0) throw new Error(`still there: ${JSON.stringify(left)}`);
  });
  t.same(await ourBackends(server), []);
});

t.test('after N failures the circuit opens: automatic runs are refused and the metric says so', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await tableWithDeadTuples(server, 'app', 'orders');
  const captured = capturedLogger('info');
  const app = await startApp(t, testConfig({
    state: { dir: await tempDir(t) }, targets: { postgres: [{ name: 'main', url: server.url('app') }] },
    remediation: { rules: [VACUUM_RULE], lockTimeoutSeconds: 1, circuitBreaker: { failures: 2, windowSeconds: 3600 } },
  }), captured.log);
  const circuitMetric = async () => {
    const text = (await app.fastify.inject({ method: 'GET', url: '/metrics' })).body;
    return /^upkeep_remediation_circuit_open\{remediation="postgres\.vacuum"\} (\d+)$/m.exec(text)?.[1];
  };
  t.equal(await circuitMetric(), '0');
  const lock = await holdTableLock(server, 'app', 'orders');
  t.teardown(() => lock.release());
  const statuses: string[] = [];
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const run = await finishedRun(app, (await postWebhook(app, await webhookPayload({ fingerprint: `attempt${attempt}` }))).body?.accepted[0]?.runId ?? '');
    statuses.push(run.status);
    if (attempt === 2) {
      t.equal(run.skipCode, 'circuit');
      t.match(run.reason, /^circuit open: postgres\.vacuum failed 2 or more times/);
    }
  }
  t.same(statuses, ['failure', 'failure', 'skipped']);
  t.equal(await circuitMetric(), '1', 'upkeep_remediation_circuit_open is 1');
  const metrics = (await app.fastify.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(metrics, /upkeep_remediation_runs_total\{remediation="postgres\.vacuum",outcome="failure"\} 2/);
  t.match(metrics, /upkeep_alerts_received_total\{status="firing"\} 3/);

  // An operator's manual run is not refused, and its success closes the circuit.
  await lock.release();
  const manual = await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.vacuum?wait=true', payload: { params: { target: 'main', database: 'app', table: 'public.orders' } } });
  t.equal(manual.json().status, 'success');
  t.equal(await circuitMetric(), '0');
  t.same(captured.lines().filter((line) => String(line.msg).startsWith('circuit ')).map((line) => [line.level, line.remediation, line.msg]), [
    [40, 'postgres.vacuum', 'circuit opened: automatic runs of this remediation are refused until it succeeds (run it manually) or its failures age out'],
    [30, 'postgres.vacuum', 'circuit closed: the remediation succeeded'],
  ], 'the log says when the circuit opened and when it closed, once each');
});

t.test('a backup.verify skipped for the lock a backup.pg_dump of the same backup holds names backup.pg_dump', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await tableWithDeadTuples(server, 'app', 'orders');
  const backups = await tempDir(t, 'upkeep-locks-backups-');
  const app = await startMainApp(t, server, {
    targets: {
      postgres: [{ name: 'main', url: server.url('app') }],
      backups: [{ name: 'app', dir: backups, pattern: 'app_*', source: { target: 'main', database: 'app' } }],
    },
  });
  // pg_dump waits for ACCESS SHARE on the table behind this session's ACCESS EXCLUSIVE, holding backup:app.
  const lock = await holdTableLock(server, 'app', 'public.orders');
  t.teardown(() => lock.release());
  const post = async (remediation: string) => (await app.fastify.inject({
    method: 'POST', url: `/remediations/${remediation}`, headers: { 'content-type': 'application/json' }, payload: { params: { backup: 'app' } },
  })).json<{ runId: string }>().runId;
  const dump = await post('backup.pg_dump');
  await waitFor('pg_dump to wait for the table', async () => {
    const waiting = await server.query("select pid from pg_stat_activity where datname = 'app' and wait_event_type = 'Lock' and application_name = 'pg_dump'");
    if (waiting.length === 0) throw new Error('not waiting yet');
  });
  const verify = await finishedRun(app, await post('backup.verify'));
  t.equal(verify.status, 'skipped');
  t.equal((verify.reason ?? '').replace(/backend pid \d+/, 'backend pid N'), `locked: another run of backup.pg_dump holds the lock on backup.verify postgres:main/app:backup:app (run ${dump}, backend pid N)`, "the holder's remediation, from the journal");
  await lock.release();
  t.equal((await finishedRun(app, dump)).status, 'success');
});
