import pg from 'pg';
import t from 'tap';
import type { App } from '../../src/server.js';
import { waitFor } from '../fixtures/ports.js';
import type { PostgresServer } from '../fixtures/postgres.js';
import { startTestPostgres, tableStats, tableWithDeadTuples } from '../actions/postgres-fixture.js';
import { capturedLogger, finishedRun, journalLines, postWebhook, startApp, tempDir, testConfig, VACUUM_RULE, webhookPayload } from './helpers.js';

const ANALYZE_RULE = {
  match: { alertname: 'PostgresStatsStale' }, remediation: 'postgres.analyze',
  params: { target: '{{labels.target}}', database: '{{labels.database}}', table: '{{labels.schema}}.{{labels.table}}' },
};
const REINDEX_RULE = {
  match: { alertname: 'PostgresIndexBloat' }, remediation: 'postgres.reindex',
  params: { target: '{{labels.target}}', database: '{{labels.database}}', index: '{{labels.index}}' },
};
const WIDENING_RULE = {
  match: { alertname: 'Widening' }, remediation: 'postgres.vacuum',
  params: { target: '{{labels.target}}', database: '{{labels.database}}', table: '{{labels.table}}', outsideFilters: true },
};

/** A least-privilege role that owns the watched database (so it may vacuum its tables) and cannot enter "locked". */
async function serverWithRole(t: Parameters<typeof startTestPostgres>[0]): Promise<{ server: PostgresServer; url: (database: string) => string }> {
  const server = await startTestPostgres(t, { shared_preload_libraries: "'pg_stat_statements'" });
  await server.query('create role upkeep login');
  await server.query('create database app owner upkeep');
  await server.query('create database locked');
  await server.query('revoke connect on database locked from public');
  await server.query('create extension pg_stat_statements', [], 'app');
  return { server, url: (database) => server.url(database).replace('postgres@', 'upkeep@') };
}

async function metric(app: App, name: string, remediation: string): Promise<string | undefined> {
  const text = (await app.fastify.inject({ method: 'GET', url: '/metrics' })).body;
  return new RegExp(`^${name}\\{remediation="${remediation.replace('.', '\\.')}"\\} (\\d+)$`, 'm').exec(text)?.[1];
}

async function runsTotal(app: App, remediation: string, outcome: string): Promise<string | undefined> {
  const text = (await app.fastify.inject({ method: 'GET', url: '/metrics' })).body;
  return new RegExp(`^upkeep_remediation_runs_total\\{remediation="${remediation.replace('.', '\\.')}",outcome="${outcome}"\\} (\\d+)$`, 'm').exec(text)?.[1];
}

t.test('alerts naming what the target does not watch are rejected, run nothing, and never open the circuit', async (t) => {
  const { server, url } = await serverWithRole(t);
  await tableWithDeadTuples(server, 'app', 'orders');
  await tableWithDeadTuples(server, 'app', 'secrets');
  await server.query('create schema audit', [], 'app');
  await server.query('create table audit.events (id int primary key)', [], 'app');
  await server.query('insert into audit.events select generate_series(1, 100); delete from audit.events', [], 'app');
  // Dead tuples in pg_class, so a vacuum of it would have something to do (and would show).
  for (let index = 0; index < 20; index += 1) await server.query(`create table scratch${index} (id int); drop table scratch${index}`, [], 'app');
  const [toast] = await server.query<{ name: string }>("select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'pg_toast' order by 1 limit 1", [], 'app');
  const catalogBefore = await server.query<{ vacuums: string }>("select vacuum_count as vacuums from pg_stat_all_tables where relid = 'pg_catalog.pg_class'::regclass", [], 'app');
  await server.query('select pg_stat_statements_reset()', [], 'app');

  const captured = capturedLogger('info');
  const stateDir = await tempDir(t);
  const app = await startApp(t, testConfig({
    state: { dir: stateDir },
    targets: {
      postgres: [
        { name: 'main', url: url('app'), databases: ['app'], tables: { exclude: ['^audit\\.', '^public\\.secrets$'] } },
        { name: 'auto', url: url('app'), tables: { exclude: ['^audit\\.', '^public\\.secrets$'] } },
      ],
    },
    remediation: { rules: [VACUUM_RULE, ANALYZE_RULE, REINDEX_RULE, WIDENING_RULE], circuitBreaker: { failures: 2, windowSeconds: 3600 } },
  }), captured.log);

  const alert = (fingerprint: string, labels: Record<string, string>) => webhookPayload({ fingerprint, labels });
  // Refused by the config alone: listed under ignored with the reason, journalled and counted, nothing queued.
  const screened: Array<[string, Record<string, string>, string]> = [
    ['catalog', { schema: 'pg_catalog', table: 'pg_class' }, 'pg_catalog.pg_class is in the system schema pg_catalog; upkeep acts only on user tables (a manual or CLI run can go further with allowSystemCatalogs: true)'],
    ['infoschema', { schema: 'information_schema', table: 'tables' }, 'information_schema.tables is in the system schema information_schema; upkeep acts only on user tables (a manual or CLI run can go further with allowSystemCatalogs: true)'],
    ['toast', { schema: 'pg_toast', table: toast?.name ?? '' }, `pg_toast.${toast?.name ?? ''} is in the system schema pg_toast; upkeep acts only on user tables (a manual or CLI run can go further with allowSystemCatalogs: true)`],
    ['schema', { schema: 'audit', table: 'events' }, 'audit.events is outside targets.postgres "main" tables.include/exclude (a manual or CLI run can go further with outsideFilters: true)'],
    ['table', { schema: 'public', table: 'secrets' }, 'public.secrets is outside targets.postgres "main" tables.include/exclude (a manual or CLI run can go further with outsideFilters: true)'],
    ['database', { database: 'postgres' }, 'database "postgres" is not in targets.postgres "main" databases (app)'],
    ['nul', { table: 'orders\u0000' }, 'invalid params: table: must not contain control characters'],
    ['analyze', { alertname: 'PostgresStatsStale', schema: 'pg_catalog', table: 'pg_statistic' }, 'pg_catalog.pg_statistic is in the system schema pg_catalog; upkeep acts only on user tables (a manual or CLI run can go further with allowSystemCatalogs: true)'],
    ['reindex', { alertname: 'PostgresIndexBloat', index: 'pg_catalog.pg_class_oid_index' }, 'pg_catalog.pg_class_oid_index is in the system schema pg_catalog; upkeep acts only on user tables (a manual or CLI run can go further with allowSystemCatalogs: true)'],
    ['widening', { alertname: 'Widening', table: 'public.secrets' }, 'outsideFilters and allowSystemCatalogs are for manual and CLI runs only; an alert run acts only on what targets.postgres "main" watches'],
  ];
  const rejectedIds: string[] = [];
  for (const [fingerprint, labels, reason] of screened) {
    const reply = await postWebhook(app, await alert(fingerprint, labels));
    t.equal(reply.statusCode, 202);
    t.same(reply.body?.accepted, [], `${fingerprint}: nothing queued`);
    t.match(reply.body?.ignored, [{ fingerprint, reason: `rejected: ${reason}`, remediation: /^postgres\./, runId: /^[0-9a-f-]{36}$/ }], fingerprint);
    rejectedIds.push(reply.body?.ignored[0]?.runId ?? '');
  }
  const redelivered = await postWebhook(app, await alert('catalog', { schema: 'pg_catalog', table: 'pg_class' }));
  t.match(redelivered.body?.accepted, [{ status: 'duplicate' }], 'a re-delivered rejected alert is a duplicate, not counted again');

  // Refused once the catalog has been asked: queued, then rejected by the engine.
  const resolved: Array<[string, Record<string, string>, RegExp]> = [
    ['template0', { target: 'auto', database: 'template0' }, /^database "template0" is not watched by targets\.postgres "auto" \(databases: auto watches the databases that exist, accept connections, are not templates and grant upkeep CONNECT; a manual or CLI run can go further with outsideFilters: true\)$/],
    ['noconnect', { target: 'auto', database: 'locked' }, /^database "locked" is not watched by targets\.postgres "auto"/],
    ['missing', { target: 'auto', database: 'nope' }, /^database "nope" is not watched by targets\.postgres "auto"/],
    ['quoted', { schema: 'public', table: '"secrets"' }, /^public\.secrets is outside targets\.postgres "main" tables\.include\/exclude/],
    ['unknown', { schema: 'public', table: 'nothing_here' }, /^table "public\.nothing_here" does not exist in main\/app$/],
  ];
  for (const [fingerprint, labels, reason] of resolved) {
    const reply = await postWebhook(app, await alert(fingerprint, labels));
    const run = await finishedRun(app, reply.body?.accepted[0]?.runId ?? '');
    t.equal(run.status, 'rejected', fingerprint);
    t.match(run.reason, reason, fingerprint);
    t.notOk(run.plan, `${fingerprint}: no plan`);
    rejectedIds.push(run.id);
  }

  t.equal(await runsTotal(app, 'postgres.vacuum', 'rejected'), String(rejectedIds.length - 2), 'every rejected vacuum counted as rejected');
  t.equal(await runsTotal(app, 'postgres.analyze', 'rejected'), '1');
  t.equal(await runsTotal(app, 'postgres.reindex', 'rejected'), '1');
  t.equal(await runsTotal(app, 'postgres.vacuum', 'failure'), '0');
  t.equal(await runsTotal(app, 'postgres.vacuum', 'skipped'), '1', 'only the duplicate');
  t.equal(await metric(app, 'upkeep_remediation_circuit_open', 'postgres.vacuum'), '0', `circuit closed after ${rejectedIds.length} rejections (circuitBreaker.failures: 2)`);

  const statements = await server.query<{ query: string }>('select query from pg_stat_statements', [], 'app');
  t.ok(statements.length > 0, 'pg_stat_statements saw the catalog lookups');
  t.same(statements.filter((row) => /vacuum|analyze|reindex/i.test(row.query)), [], 'no VACUUM, ANALYZE or REINDEX reached the server');
  t.same(await server.query("select pid from pg_stat_activity where application_name like 'upkeep%'"), [], 'no backend of ours is left');
  t.same(await server.query<{ vacuums: string }>("select vacuum_count as vacuums from pg_stat_all_tables where relid = 'pg_catalog.pg_class'::regclass", [], 'app'), catalogBefore, 'pg_class was not vacuumed');
  t.equal((await tableStats(server, 'app', 'secrets')).vacuumCount, 0);
  t.equal((await tableStats(server, 'app', 'orders')).vacuumCount, 0);

  // The next legitimate alert runs: the rejections did not stop it.
  const legitimate = await postWebhook(app, await alert('legit', {}));
  const run = await finishedRun(app, legitimate.body?.accepted[0]?.runId ?? '');
  t.equal(run.status, 'success', run.error ?? run.reason ?? '');
  t.equal((await tableStats(server, 'app', 'orders')).vacuumCount, 1, 'vacuum_count of orders rose');
  t.equal(run.lockKey, 'postgres.vacuum postgres:main/app:vacuum:"public"."orders"');

  const finals = new Map((await journalLines(stateDir)).map((line) => [line.id, line]));
  t.same(rejectedIds.map((id) => finals.get(id)?.status), rejectedIds.map(() => 'rejected'), 'every rejection is journalled');

  // One 'run finished' line per run; rejections at warn (40) with the reason, before any target was locked.
  const finished = captured.text().trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.msg === 'run finished');
  const byRun = new Map(finished.map((line) => [line.runId, line]));
  t.equal(finished.length, rejectedIds.length + 2, 'the rejections, the duplicate and the legitimate run');
  const { time, pid, hostname, ...line } = byRun.get(rejectedIds[0]) ?? {};
  t.ok(time !== undefined && pid === process.pid && typeof hostname === 'string', 'pino\'s base fields');
  t.same(line, {
    level: 40, runId: rejectedIds[0], remediation: 'postgres.vacuum', trigger: 'alert', target: null, status: 'rejected',
    durationSeconds: null, reason: screened[0]?.[2], msg: 'run finished',
  });
  t.same(rejectedIds.map((id) => byRun.get(id)?.level), rejectedIds.map(() => 40));
  t.match(byRun.get(rejectedIds.at(-1)), { level: 40, status: 'rejected', reason: 'table "public.nothing_here" does not exist in main/app', target: null });
  t.match(byRun.get(run.id), { level: 30, status: 'success', target: 'postgres.vacuum postgres:main/app:vacuum:"public"."orders"' });
});

t.test('public.orders, orders, "orders" and PUBLIC.orders are one table: one lock, one cooldown', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await tableWithDeadTuples(server, 'app', 'orders');
  await tableWithDeadTuples(server, 'app', 'customers');
  const app = await startApp(t, testConfig({
    state: { dir: await tempDir(t) },
    targets: { postgres: [{ name: 'main', url: server.url('app'), databases: ['app'] }] },
    remediation: { rules: [{ ...VACUUM_RULE, params: { ...VACUUM_RULE.params, table: '{{labels.table}}' } }], cooldownSeconds: 300 },
  }));
  const vacuumFor = async (fingerprint: string, table: string) => {
    const reply = await postWebhook(app, await webhookPayload({ fingerprint, labels: { table } }));
    return reply.body?.accepted[0]?.runId ?? '';
  };

  // While one spelling's VACUUM waits for the table, another spelling is refused by the lock.
  const locker = new pg.Client({ connectionString: server.url('app') });
  await locker.connect();
  await locker.query('begin; lock table customers in access exclusive mode');
  t.teardown(async () => { await locker.query('rollback').catch(() => undefined); await locker.end(); });
  const waiting = await vacuumFor('c1', 'public.customers');
  await waitFor('the first VACUUM to wait for the table lock', async () => {
    const rows = await server.query("select pid from pg_stat_activity where application_name like 'upkeep:%' and wait_event_type = 'Lock' and query like 'VACUUM%'");
    if (rows.length !== 1) throw new Error('not waiting yet');
  });
  const refused = await finishedRun(app, await vacuumFor('c2', 'customers'));
  t.equal(refused.status, 'skipped');
  t.equal(refused.skipCode, 'lock');
  t.equal((refused.reason ?? '').replace(/backend pid \d+/, 'backend pid N'), `locked: another run of postgres.vacuum holds the lock on postgres.vacuum postgres:main/app:vacuum:"public"."customers" (run ${waiting}, backend pid N)`, 'the reason names the run holding the lock');
  await locker.query('commit');
  t.equal((await finishedRun(app, waiting)).status, 'success');
  t.equal((await tableStats(server, 'app', 'customers')).vacuumCount, 1, 'one VACUUM of customers');

  // After it ran, every other spelling is inside its cooldown.
  const first = await finishedRun(app, await vacuumFor('o1', 'public.orders'));
  t.equal(first.status, 'success', first.error ?? '');
  for (const [fingerprint, spelling] of [['o2', 'orders'], ['o3', '"orders"'], ['o4', 'PUBLIC.orders'], ['o5', '"public"."orders"']] as const) {
    const run = await finishedRun(app, await vacuumFor(fingerprint, spelling));
    t.equal(run.status, 'skipped', spelling);
    t.equal(run.skipCode, 'cooldown', spelling);
    t.match(run.reason, /^cooldown: postgres\.vacuum postgres:main\/app:vacuum:"public"\."orders" ran less than 300s ago; \d+s left$/, spelling);
  }
  t.equal((await tableStats(server, 'app', 'orders')).vacuumCount, 1, 'one VACUUM of orders');
});
