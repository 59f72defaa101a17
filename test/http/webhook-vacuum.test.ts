import t from 'tap';
import { startTestPostgres, tableStats, tableWithDeadTuples } from '../actions/postgres-fixture.js';
import { finishedRun, journalLines, postWebhook, startApp, tempDir, testConfig, VACUUM_RULE, webhookPayload } from './helpers.js';

t.test('a real alert runs VACUUM on its table, and only on it', async (t) => {
  const pg = await startTestPostgres(t);
  await pg.query('create database app');
  await tableWithDeadTuples(pg, 'app', 'orders');
  await tableWithDeadTuples(pg, 'app', 'customers');
  const stateDir = await tempDir(t);
  const app = await startApp(t, testConfig({
    state: { dir: stateDir },
    targets: { postgres: [{ name: 'main', url: pg.url('app') }] },
    remediation: { rules: [VACUUM_RULE] },
  }));
  const before = await tableStats(pg, 'app', 'orders');
  const other = await tableStats(pg, 'app', 'customers');

  const reply = await postWebhook(app, await webhookPayload());
  t.equal(reply.statusCode, 202);
  t.equal(reply.body?.accepted.length, 1);
  t.equal(reply.body?.accepted[0]?.remediation, 'postgres.vacuum');
  const run = await finishedRun(app, reply.body?.accepted[0]?.runId ?? '');
  t.equal(run.status, 'success', run.error ?? run.reason ?? '');

  const after = await tableStats(pg, 'app', 'orders');
  t.ok(after.vacuumCount > before.vacuumCount, 'vacuum_count of orders rose');
  t.equal(after.deadTuples, 0, 'n_dead_tup of orders reached 0');
  t.same(await tableStats(pg, 'app', 'customers'), other, 'customers was not vacuumed');

  const lines = (await journalLines(stateDir)).filter((line) => line.id === run.id);
  t.same(lines.map((line) => line.status).filter((status, index, all) => all.indexOf(status) === index), ['queued', 'running', 'success']);
  const last = lines.at(-1);
  t.same(last?.plan, [{ kind: 'sql', detail: 'VACUUM (ANALYZE) "public"."orders"' }]);
  t.equal(last?.verification?.ok, true);
  t.match(last?.verification?.detail, /public\.orders: dead tuples 400 -> 0/);
  t.equal(last?.alert?.fingerprint, '674f8f7b5e380364');
  t.equal(last?.trigger, 'alert');
});

t.test('a re-delivered alert runs once, even after a restart; duplicates are journalled', async (t) => {
  const pg = await startTestPostgres(t);
  await pg.query('create database app');
  await tableWithDeadTuples(pg, 'app', 'orders');
  const stateDir = await tempDir(t);
  const config = testConfig({
    state: { dir: stateDir },
    targets: { postgres: [{ name: 'main', url: pg.url('app') }] },
    remediation: { rules: [VACUUM_RULE] },
  });
  const payload = await webhookPayload();
  const first = await startApp(t, config);
  const replies = [];
  for (let delivery = 0; delivery < 3; delivery += 1) replies.push(await postWebhook(first, payload));
  t.same(replies.map((reply) => reply.statusCode), [202, 202, 202]);
  t.same(replies.map((reply) => reply.body?.accepted[0]?.status), ['queued', 'duplicate', 'duplicate']);
  const run = await finishedRun(first, replies[0]?.body?.accepted[0]?.runId ?? '');
  t.equal(run.status, 'success');
  await first.fastify.close();

  const second = await startApp(t, config);
  const again = await postWebhook(second, payload);
  t.equal(again.statusCode, 202);
  t.equal(again.body?.accepted[0]?.status, 'duplicate');
  const duplicate = await finishedRun(second, again.body?.accepted[0]?.runId ?? '');
  t.equal(duplicate.duplicateOf, run.id);
  t.match(duplicate.reason, /already handled/);

  const finals = new Map((await journalLines(stateDir)).map((line) => [line.id, line]));
  const statuses = [...finals.values()].map((line) => line.status).sort();
  t.same(statuses, ['duplicate', 'duplicate', 'duplicate', 'success'], 'one run and three duplicates');
  t.equal((await tableStats(pg, 'app', 'orders')).vacuumCount, 1, 'VACUUM ran exactly once');
});

t.test('hostile table labels are rejected with a reason and nothing runs', async (t) => {
  const pg = await startTestPostgres(t, { shared_preload_libraries: "'pg_stat_statements'" });
  await pg.query('create database app');
  await pg.query('create extension pg_stat_statements', [], 'app');
  await tableWithDeadTuples(pg, 'app', 'orders');
  await pg.query('create table y (id int)', [], 'app');
  await pg.query('create table t (id int)', [], 'app');
  await pg.query('select pg_stat_statements_reset()', [], 'app');
  const stateDir = await tempDir(t);
  const app = await startApp(t, testConfig({
    state: { dir: stateDir },
    targets: { postgres: [{ name: 'main', url: pg.url('app') }] },
    remediation: { rules: [VACUUM_RULE] },
  }));
  const hostile = ['x; DROP TABLE y', '"t"--', '../../etc', 'orders"; DROP TABLE y; --'];
  const schemas = ['public', 'public', 'public', 'public"."orders'];
  for (const [index, table] of hostile.entries()) {
    const reply = await postWebhook(app, await webhookPayload({ labels: { table, schema: schemas[index] ?? 'public' }, fingerprint: `hostile${index}` }));
    t.equal(reply.statusCode, 202);
    const run = await finishedRun(app, reply.body?.accepted[0]?.runId ?? '');
    t.equal(run.status, 'rejected', `${table} rejected`);
    t.match(run.reason, /^table ".*" does not exist in main\/app$/, `reason names the table: ${run.reason}`);
    t.notOk(run.plan, 'no plan was made');
  }
  const statements = await pg.query<{ query: string }>('select query from pg_stat_statements', [], 'app');
  t.ok(statements.length > 0, 'pg_stat_statements saw our catalog lookups');
  t.same(statements.filter((row) => /vacuum|drop/i.test(row.query)), [], 'no VACUUM or DROP ever reached the server');
  const tables = await pg.query<{ relname: string }>("select relname from pg_class where relname in ('orders', 'y', 't') order by 1", [], 'app');
  t.same(tables.map((row) => row.relname), ['orders', 't', 'y'], 'all tables still exist');
  t.equal((await tableStats(pg, 'app', 'orders')).vacuumCount, 0);
});

t.test('a table vacuumed between the alert and the run is skipped: condition cleared', async (t) => {
  const pg = await startTestPostgres(t);
  await pg.query('create database app');
  await tableWithDeadTuples(pg, 'app', 'orders');
  await pg.query('vacuum public.orders', [], 'app');
  const app = await startApp(t, testConfig({
    state: { dir: await tempDir(t) },
    targets: { postgres: [{ name: 'main', url: pg.url('app') }] },
    remediation: { rules: [VACUUM_RULE] },
  }));
  const reply = await postWebhook(app, await webhookPayload());
  const run = await finishedRun(app, reply.body?.accepted[0]?.runId ?? '');
  t.equal(run.status, 'skipped');
  t.equal(run.skipCode, 'condition');
  t.match(run.reason, /^condition cleared: public\.orders has 0 dead tuples/);
  t.equal((await tableStats(pg, 'app', 'orders')).vacuumCount, 1, 'only the manual vacuum ran');
});

t.test('a dry run returns the exact SQL and changes nothing', async (t) => {
  const pg = await startTestPostgres(t);
  await pg.query('create database app');
  await tableWithDeadTuples(pg, 'app', 'orders');
  await pg.query('create table "Odd ""Name""" (id int)', [], 'app');
  await pg.query('insert into "Odd ""Name""" select 1; delete from "Odd ""Name"""', [], 'app');
  const app = await startApp(t, testConfig({
    state: { dir: await tempDir(t) },
    targets: { postgres: [{ name: 'main', url: pg.url('app') }] },
    remediation: { rules: [{ ...VACUUM_RULE, dryRun: true }] },
  }));
  const before = await tableStats(pg, 'app', 'orders');
  const manual = await app.fastify.inject({
    method: 'POST', url: '/remediations/postgres.vacuum?wait=true',
    payload: { params: { target: 'main', database: 'app', table: 'public.orders', analyze: false }, dryRun: true },
  });
  t.equal(manual.statusCode, 200);
  t.equal(manual.json().status, 'dry_run');
  t.same(manual.json().plan, [{ kind: 'sql', detail: 'VACUUM "public"."orders"' }]);

  const odd = await app.fastify.inject({
    method: 'POST', url: '/remediations/postgres.vacuum?wait=true',
    payload: { params: { target: 'main', database: 'app', table: 'public.Odd "Name"', full: true }, dryRun: true },
  });
  t.same(odd.json().plan, [{ kind: 'sql', detail: 'VACUUM (FULL, ANALYZE) "public"."Odd ""Name"""' }], 'identifiers quoted from the catalog');

  const reply = await postWebhook(app, await webhookPayload());
  const fromAlert = await finishedRun(app, reply.body?.accepted[0]?.runId ?? '');
  t.equal(fromAlert.status, 'dry_run', 'the rule asks for a dry run');
  t.same(fromAlert.plan, [{ kind: 'sql', detail: 'VACUUM (ANALYZE) "public"."orders"' }]);
  t.same(await tableStats(pg, 'app', 'orders'), before, 'nothing changed');
});

t.test('full: true from an alert is refused outside a window and runs inside one', async (t) => {
  const pg = await startTestPostgres(t);
  await pg.query('create database app');
  await tableWithDeadTuples(pg, 'app', 'orders');
  const rule = { ...VACUUM_RULE, params: { ...VACUUM_RULE.params, full: 'true' }, allowRisk: 'disruptive' };
  const base = { targets: { postgres: [{ name: 'main', url: pg.url('app') }] } };
  const payload = await webhookPayload();

  const noAllow = await startApp(t, testConfig({ ...base, state: { dir: await tempDir(t) }, remediation: { rules: [VACUUM_RULE].map((r) => ({ ...r, params: { ...r.params, full: 'true' } })), windows: [{ name: 'always', cron: '* * * * *', durationMinutes: 1 }] } }));
  const refusedByRule = await finishedRun(noAllow, (await postWebhook(noAllow, payload)).body?.accepted[0]?.runId ?? '');
  t.equal(refusedByRule.status, 'skipped');
  t.equal(refusedByRule.skipCode, 'risk');
  t.match(refusedByRule.reason, /disruptive and the rule allows only safe/);

  const closed = await startApp(t, testConfig({ ...base, state: { dir: await tempDir(t) }, remediation: { rules: [rule], windows: [{ name: 'feb30', cron: '0 3 30 2 *', durationMinutes: 60 }] } }));
  const refused = await finishedRun(closed, (await postWebhook(closed, payload)).body?.accepted[0]?.runId ?? '');
  t.equal(refused.status, 'skipped');
  t.equal(refused.skipCode, 'window');
  t.match(refused.reason, /need an open maintenance window/);
  t.equal((await tableStats(pg, 'app', 'orders')).deadTuples, 400, 'nothing ran');

  const open = await startApp(t, testConfig({ ...base, state: { dir: await tempDir(t) }, remediation: { rules: [rule], windows: [{ name: 'always', cron: '* * * * *', durationMinutes: 1 }] } }));
  const ran = await finishedRun(open, (await postWebhook(open, payload)).body?.accepted[0]?.runId ?? '');
  t.equal(ran.status, 'success', ran.error ?? '');
  t.equal(ran.risk, 'disruptive');
  t.same(ran.plan, [{ kind: 'sql', detail: 'VACUUM (FULL, ANALYZE) "public"."orders"' }]);
  t.equal((await tableStats(pg, 'app', 'orders')).deadTuples, 0);
});
