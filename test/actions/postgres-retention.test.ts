import { EventEmitter } from 'node:events';
import t from 'tap';
import { bufferLogger } from '../fixtures/log.js';
import { ValidationError } from '../../src/errors.js';
import { runFromCli } from '../../src/triggers/cli.js';
import { Connections } from '../../src/systems/connections.js';
import { findPolicy, retention } from '../../src/actions/postgres-retention.js';
import { finishedRun, postWebhook, tempDir, testConfig, webhookPayload, startMainApp } from '../http/helpers.js';
import { startTestPostgres } from './postgres-fixture.js';

async function seedLogs(server: Awaited<ReturnType<typeof startTestPostgres>>): Promise<void> {
  await server.query('create table logs (id int primary key, created_at timestamptz not null, message text)', [], 'app');
  await server.query('create table logs_archive (id int primary key, created_at timestamptz not null, message text, archived_at timestamptz default now())', [], 'app');
  // 1..250 are 40 days old, 251..400 are 10 days old.
  await server.query("insert into logs select g, now() - interval '40 days' - g * interval '1 minute', 'old ' || g from generate_series(1, 250) g", [], 'app');
  await server.query("insert into logs select g, now() - interval '10 days', 'new ' || g from generate_series(251, 400) g", [], 'app');
  await server.query('create table job_logs (id int primary key, created_at timestamptz not null)', [], 'app');
  await server.query("insert into job_logs select g, now() - (g || ' days')::interval from generate_series(1, 60) g", [], 'app');
}

const counts = async (server: Awaited<ReturnType<typeof startTestPostgres>>) => {
  const [row] = await server.query<{ source: string; archive: string; old_source: string; archived_ids: string }>(
    "select (select count(*) from logs) as source, (select count(*) from logs_archive) as archive, (select count(*) from logs where created_at < now() - interval '30 days') as old_source, (select string_agg(id::text, ',' order by id) from logs_archive where id > 245) as archived_ids",
    [], 'app');
  return { source: Number(row?.source), archive: Number(row?.archive), oldSource: Number(row?.old_source), archivedTail: row?.archived_ids };
};

t.test('archive-mode retention moves exactly the old rows and keeps source + archive constant', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await seedLogs(server);
  const app = await startMainApp(t, server, {
    remediation: {
      retention: [
        { name: 'logs', target: 'main', database: 'app', table: 'public.logs', timestampColumn: 'created_at', olderThan: '30 days', archiveTable: 'public.logs_archive', batchSize: 125 },
        { name: 'job_logs', target: 'main', database: 'app', table: 'job_logs', timestampColumn: 'created_at', olderThan: '30 days', batchSize: 7 },
      ],
    },
  });
  const before = await counts(server);
  t.same(before, { source: 400, archive: 0, oldSource: 250, archivedTail: null });

  const dry = (await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.retention?wait=true', payload: { params: { policy: 'logs' }, dryRun: true } })).json();
  t.equal(dry.status, 'dry_run');
  t.equal(dry.plan.length, 5);
  t.equal(dry.plan[0].detail, 'BEGIN');
  t.match(dry.plan[1].detail, /^SELECT ctid::text AS tid FROM "public"."logs" WHERE "created_at" < '[^']+'::timestamptz LIMIT 125 FOR UPDATE$/);
  t.equal(dry.plan[2].detail, 'INSERT INTO "public"."logs_archive" ("id", "created_at", "message") SELECT "id", "created_at", "message" FROM "public"."logs" WHERE ctid = ANY ($1::tid[]) -- $1: the ctids selected above');
  t.equal(dry.plan[3].detail, 'DELETE FROM "public"."logs" WHERE ctid = ANY ($1::tid[])');
  t.same(await counts(server), before, 'the dry run moved nothing');

  const run = (await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.retention?wait=true', payload: { params: { policy: 'logs' } } })).json();
  t.equal(run.status, 'success', run.error);
  t.equal(run.risk, 'destructive');
  t.match(run.output, { deleted: 250, archived: 250, batches: 3 }, 'two full batches, then an empty one ends it');
  t.match(run.verification.detail, /^250 row\(s\) older than .* moved to "public"."logs_archive"$/);
  const after = await counts(server);
  t.equal(after.source + after.archive, before.source + before.archive, 'source + archive is constant');
  t.same(after, { source: 150, archive: 250, oldSource: 0, archivedTail: '246,247,248,249,250' }, 'exactly the rows older than 30 days moved');
  const [{ newest }] = await server.query<{ newest: number }>('select max(id) as newest from logs_archive', [], 'app') as [{ newest: number }];
  t.equal(newest, 250, 'no row younger than the interval moved');

  const again = (await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.retention?wait=true', payload: { params: { policy: 'logs' } } })).json();
  t.equal(again.status, 'skipped');
  t.match(again.reason, /condition cleared: no row of public.logs is older than 30 days/);

  const deleteMode = (await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.retention?wait=true', payload: { params: { table: 'public.job_logs' } } })).json();
  t.equal(deleteMode.status, 'success', deleteMode.error);
  t.match(deleteMode.plan[0].detail, /^DELETE FROM "public"."job_logs" WHERE ctid = ANY \(ARRAY\(SELECT ctid FROM "public"."job_logs" WHERE "created_at" < '[^']+'::timestamptz LIMIT 7\)\)/);
  t.match(deleteMode.output, { deleted: 31, archived: 0 });
  const [{ left }] = await server.query<{ left: string }>('select count(*) as left from job_logs', [], 'app') as [{ left: string }];
  t.equal(Number(left), 29);
});

t.test('retention on an undeclared table is refused, from an alert or by hand', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await seedLogs(server);
  const app = await startMainApp(t, server, {
    remediation: {
      retention: [
        { name: 'job_logs', target: 'main', database: 'app', table: 'public.job_logs', timestampColumn: 'created_at', olderThan: '30 days' },
        { name: 'catalog', target: 'main', database: 'app', table: 'pg_catalog.pg_description', timestampColumn: 'objoid', olderThan: '30 days' },
      ],
      rules: [{ match: { alertname: 'LogsTooBig' }, remediation: 'postgres.retention', allowRisk: 'destructive', params: { table: '{{labels.table}}' } }],
      windows: [{ name: 'always', cron: '* * * * *', durationMinutes: 1 }],
    },
  });
  const manual = await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.retention?wait=true', payload: { params: { table: 'public.logs' } } });
  t.equal(manual.statusCode, 400, 'refused by the config alone: nothing is queued');
  t.same(manual.json(), { error: 'table "public.logs" is not declared in remediation.retention; upkeep only deletes rows from declared tables (declared: job_logs, catalog)' });
  const catalog = (await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.retention?wait=true', payload: { params: { policy: 'catalog' }, dryRun: true } })).json();
  t.equal(catalog.status, 'rejected', 'even a declared policy never deletes from a system catalog');
  t.equal(catalog.reason, 'retention "catalog": pg_catalog.pg_description is in the system schema pg_catalog; retention acts only on user tables');
  const alert = await postWebhook(app, await webhookPayload({ labels: { alertname: 'LogsTooBig', table: 'public.logs' }, fingerprint: 'logs1' }));
  t.same(alert.body?.accepted, []);
  t.match(alert.body?.ignored, [{ fingerprint: 'logs1', reason: 'rejected: table "public.logs" is not declared in remediation.retention; upkeep only deletes rows from declared tables (declared: job_logs, catalog)' }]);
  const fromAlert = await finishedRun(app, alert.body?.ignored[0]?.runId ?? '');
  t.equal(fromAlert.status, 'rejected', 'journalled as rejected');
  const byName = await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.retention?wait=true', payload: { params: { policy: 'logs' } } });
  t.match(byName.json().error, /no retention policy named "logs"/);
  const unknownKey = await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.retention', payload: { params: { policy: 'job_logs', where: 'true' } } });
  t.equal(unknownKey.statusCode, 400, 'a caller cannot widen a policy');
  const [{ total }] = await server.query<{ total: string }>('select count(*) as total from logs', [], 'app') as [{ total: string }];
  t.equal(Number(total), 400, 'nothing was deleted');
});

t.test('findPolicy matches declared tables with or without their schema', async (t) => {
  const policy = { name: 'p', target: 'main', database: 'app', table: 'job_logs', timestampColumn: 'c', olderThan: '1 day', archiveTable: null, batchSize: 1 };
  t.equal(findPolicy([policy], { table: 'public.job_logs' }).name, 'p');
  t.equal(findPolicy([policy], { table: 'job_logs', target: 'main', database: 'app' }).name, 'p');
  t.throws(() => findPolicy([policy], { table: 'job_logs', database: 'other' }), /not declared/);
  t.throws(() => findPolicy([], { policy: 'p' }), /declared: none/);
});

t.test('a policy named with a target, database or table other than its own is refused, naming its own', async (t) => {
  const policy = { name: 'ev', target: 'main', database: 'app', table: 'public.events', timestampColumn: 'c', olderThan: '1 day', archiveTable: null, batchSize: 1 };
  const own = 'retention policy "ev" acts on target "main", database "app", table "public.events", but the params give';
  t.throws(() => findPolicy([policy], { policy: 'ev', target: 'nosuch', database: 'nosuchdb', table: 'public.other' }),
    new ValidationError(`${own} target "nosuch", database "nosuchdb", table "public.other"; leave them out or give the policy's own`));
  t.throws(() => findPolicy([policy], { policy: 'ev', target: 'nosuch' }), new ValidationError(`${own} target "nosuch"; leave them out or give the policy's own`), 'an unknown target');
  t.throws(() => findPolicy([policy], { policy: 'ev', database: 'other' }), new ValidationError(`${own} database "other"; leave them out or give the policy's own`));
  t.throws(() => findPolicy([policy], { policy: 'ev', table: 'audit.events' }), new ValidationError(`${own} table "audit.events"; leave them out or give the policy's own`));
  t.equal(findPolicy([policy], { policy: 'ev', target: 'main', database: 'app', table: 'public.events' }), policy, 'the policy\'s own values are fine');
  t.equal(findPolicy([policy], { policy: 'ev', table: 'events' }), policy, 'its table in another spelling too');
  t.throws(() => findPolicy([policy], { table: 'public.events', target: 'nosuch' }), /is not declared in remediation.retention/, 'the table form refuses an unknown target as before');
});

t.test('postgres.retention with a policy and someone else\'s target, database or table: a 400 and nothing journalled; the CLI rejects it', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await server.query('create table events (id int primary key, created_at timestamptz not null)', [], 'app');
  await server.query('create table other (id int primary key, created_at timestamptz not null)', [], 'app');
  await server.query("insert into events select g, now() - interval '40 days' from generate_series(1, 10) g", [], 'app');
  await server.query("insert into other select g, now() - interval '40 days' from generate_series(1, 10) g", [], 'app');
  const remediation = { retention: [{ name: 'ev', target: 'main', database: 'app', table: 'public.events', timestampColumn: 'created_at', olderThan: '30 days' }] };
  const app = await startMainApp(t, server, { remediation });
  const post = (params: Record<string, string>) => app.fastify.inject({ method: 'POST', url: '/remediations/postgres.retention?wait=true', payload: { params, dryRun: true } });

  const refused = await post({ policy: 'ev', target: 'nosuch', database: 'nosuchdb', table: 'public.other' });
  t.same([refused.statusCode, refused.json()], [400, { error: 'retention policy "ev" acts on target "main", database "app", table "public.events", but the params give target "nosuch", database "nosuchdb", table "public.other"; leave them out or give the policy\'s own' }]);
  t.same((await app.fastify.inject({ method: 'GET', url: '/runs' })).json(), { runs: [], next: null }, 'nothing journalled');

  const agreeing = (await post({ policy: 'ev', target: 'main', database: 'app', table: 'public.events' })).json();
  t.equal(agreeing.status, 'dry_run', agreeing.reason);
  t.match(agreeing.plan[0].detail, /^DELETE FROM "public"."events" /, 'the policy\'s own values name its table, which is planned');

  const lines: string[] = [];
  const config = testConfig({ state: { dir: await tempDir(t) }, targets: { postgres: [{ name: 'main', url: server.url('app') }] }, remediation });
  const exit = await runFromCli(config, bufferLogger().log, { remediation: 'postgres.retention', params: { policy: 'ev', target: 'nosuch' }, dryRun: true }, (line) => lines.push(line), new EventEmitter());
  t.equal(exit, 1);
  t.same(lines.slice(1), ['status: rejected', 'reason: retention policy "ev" acts on target "main", database "app", table "public.events", but the params give target "nosuch"; leave them out or give the policy\'s own']);
  const [{ events, others }] = await server.query<{ events: string; others: string }>('select (select count(*) from events) as events, (select count(*) from other) as others', [], 'app') as [{ events: string; others: string }];
  t.same([Number(events), Number(others)], [10, 10], 'nothing was deleted');
});

t.test('retention verification fails when old rows remain or the archive count differs', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await seedLogs(server);
  const config = testConfig({
    targets: { postgres: [{ name: 'main', url: server.url('app') }] },
    remediation: { retention: [{ name: 'logs', target: 'main', database: 'app', table: 'public.logs', timestampColumn: 'created_at', olderThan: '30 days', archiveTable: 'public.logs_archive' }] },
  });
  const connections = new Connections(config);
  t.teardown(() => connections.close());
  const controller = new AbortController();
  const context = { config, log: bufferLogger().log, connections, signal: controller.signal, deadline: Date.now() + 60_000, trigger: 'manual' as const, now: Date.now };
  const params = { policy: 'logs' };
  const before = { proceed: true, reason: '' };
  const left = await retention.verify(params, before, { detail: { cutoff: '2999-01-01T00:00:00.000Z', deleted: 0, archived: 0, batches: 1, archiveTable: 'public.logs_archive' } }, context);
  t.equal(left.ok, false);
  t.match(left.detail, /^400 row\(s\) older than the cutoff 2999-01-01T00:00:00.000Z are still there$/);
  const mismatch = await retention.verify(params, before, { detail: { cutoff: '1999-01-01T00:00:00.000Z', deleted: 2, archived: 1, batches: 1, archiveTable: 'public.logs_archive' } }, context);
  t.same([mismatch.ok, mismatch.detail], [false, 'archived 1 rows but deleted 2']);
  // run() executes the planned cutoff, never a fresh one: a plan made as of 2000 deletes nothing today.
  const stale = await retention.plan(params, { ...context, now: () => Date.parse('2000-01-31T00:00:00Z') });
  t.equal(stale.payload.cutoff, '2000-01-01T00:00:00.000Z');
  t.match((await retention.run(params, stale.payload, context)).detail, { cutoff: '2000-01-01T00:00:00.000Z', deleted: 0, archived: 0 });
  const plan = await retention.plan(params, context);
  controller.abort(new Error('deadline of 1s passed'));
  await t.rejects(retention.run(params, plan.payload, context),
    { name: 'PartialWork', message: /deadline of 1s passed/, done: { deleted: 0, archived: 0, batches: 0, archiveTable: '"public"."logs_archive"' } }, 'saying what it had done by then');
  const [{ total }] = await server.query<{ total: string }>('select count(*) as total from logs', [], 'app') as [{ total: string }];
  t.equal(Number(total), 400, 'an aborted run deletes nothing');
});
