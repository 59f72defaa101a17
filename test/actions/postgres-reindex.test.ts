import t from 'tap';
import { startApp, tempDir, testConfig } from '../http/helpers.js';
import { startTestPostgres, tableStats } from './postgres-fixture.js';

t.test('reindex (CONCURRENTLY by default) and analyze, with their verification', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await server.query('create table items (id int primary key, sku text)', [], 'app');
  await server.query('create index items_sku on items (sku)', [], 'app');
  await server.query("insert into items select g, 'sku' || g from generate_series(1, 500) g", [], 'app');
  await server.query('create table bare (id int)', [], 'app');
  await server.query('create table secrets (id int primary key)', [], 'app');
  const app = await startApp(t, testConfig({
    state: { dir: await tempDir(t) },
    targets: {
      postgres: [
        { name: 'main', url: server.url('app'), databases: ['app'], tables: { exclude: ['^public\\.secrets$'] } },
        { name: 'narrow', url: server.url('app'), databases: ['app'], tables: { include: ['^public\\.nothing$'] } },
      ],
    },
  }));
  const run = async (remediation: string, params: Record<string, unknown>, dryRun = false) =>
    (await app.fastify.inject({ method: 'POST', url: `/remediations/${remediation}?wait=true`, payload: { params, dryRun } })).json();
  const target = { target: 'main', database: 'app' };

  const index = await run('postgres.reindex', { ...target, index: 'public.items_sku' });
  t.equal(index.status, 'success', index.error);
  t.same(index.plan, [{ kind: 'sql', detail: 'REINDEX INDEX CONCURRENTLY "public"."items_sku"' }]);
  t.equal(index.risk, 'safe');
  t.match(index.verification.detail, /1 index\(es\) rebuilt, all valid/);

  const table = await run('postgres.reindex', { ...target, table: 'items', concurrently: false }, true);
  t.equal(table.status, 'dry_run');
  t.equal(table.risk, 'disruptive');
  t.same(table.plan, [{ kind: 'sql', detail: 'REINDEX TABLE "public"."items"' }]);
  const tableRun = await run('postgres.reindex', { ...target, table: 'items' });
  t.equal(tableRun.status, 'success', tableRun.error);
  t.match(tableRun.verification.detail, /2 index\(es\) rebuilt/);

  // The whole database: every table the target watches that has an index, never the excluded one.
  const database = await run('postgres.reindex', target);
  t.equal(database.status, 'success', database.error);
  t.same(database.plan, [{ kind: 'sql', detail: 'REINDEX TABLE CONCURRENTLY "public"."items"' }]);
  t.equal(database.check.reason, 'rebuilding 2 index(es) in 1 table(s) of database app');
  t.equal(database.verification.detail, '2 index(es) rebuilt, all valid');
  const everything = await run('postgres.reindex', { ...target, outsideFilters: true }, true);
  t.same(everything.plan, [
    { kind: 'sql', detail: 'REINDEX TABLE CONCURRENTLY "public"."items"' }, { kind: 'sql', detail: 'REINDEX TABLE CONCURRENTLY "public"."secrets"' },
  ], 'outsideFilters: every user table, biggest indexes first, never a system catalog');
  const excludedIndex = await run('postgres.reindex', { ...target, index: 'secrets_pkey' });
  t.equal(excludedIndex.status, 'rejected', 'an index is in scope when its table is');
  t.equal(excludedIndex.reason, 'public.secrets is outside targets.postgres "main" tables.include/exclude (a manual or CLI run can go further with outsideFilters: true)');
  const catalogIndex = await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.reindex', payload: { params: { ...target, index: 'pg_catalog.pg_class_oid_index' } } });
  t.equal(catalogIndex.statusCode, 400);
  t.match(catalogIndex.json().error, /system schema pg_catalog/);
  const nothingInScope = await run('postgres.reindex', { target: 'narrow', database: 'app' });
  t.equal(nothingInScope.status, 'skipped');
  t.equal(nothingInScope.reason, 'condition cleared: no table in scope in database app has an index');
  const catalogAllowed = await run('postgres.reindex', { ...target, index: 'pg_catalog.pg_class_oid_index', concurrently: false, allowSystemCatalogs: true }, true);
  t.equal(catalogAllowed.status, 'dry_run', 'an operator may name a system catalog explicitly');
  t.same(catalogAllowed.plan, [{ kind: 'sql', detail: 'REINDEX INDEX "pg_catalog"."pg_class_oid_index"' }]);

  const noIndexes = await run('postgres.reindex', { ...target, table: 'bare' });
  t.equal(noIndexes.status, 'skipped');
  t.match(noIndexes.reason, /has no indexes/);
  const both = await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.reindex', payload: { params: { ...target, table: 'items', index: 'items_sku' } } });
  t.equal(both.statusCode, 400);
  t.match(both.json().error, /give table or index, not both/);
  const notAnIndex = await run('postgres.reindex', { ...target, index: 'items' });
  t.match(notAnIndex.reason, /^index "items" does not exist in main\/app$/);
  const otherDatabase = await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.reindex', payload: { params: { target: 'main', database: 'postgres' } } });
  t.equal(otherDatabase.statusCode, 400, 'refused before anything is queued');
  t.same(otherDatabase.json(), { error: 'database "postgres" is not in targets.postgres "main" databases (app)' });

  // A name is read as written first, then as SQL would read it: "Items" and items are two tables.
  await server.query('create table "Items" (id int)', [], 'app');
  const mixedCase = await run('postgres.analyze', { ...target, table: 'Items' }, true);
  t.same(mixedCase.plan, [{ kind: 'sql', detail: 'ANALYZE "public"."Items"' }], 'the literal name wins');
  const folded = await run('postgres.analyze', { ...target, table: 'PUBLIC.ITEMS' }, true);
  t.same(folded.plan, [{ kind: 'sql', detail: 'ANALYZE "public"."items"' }], 'no literal match: the SQL reading');
  const quoted = await run('postgres.analyze', { ...target, table: '"Items"' }, true);
  t.same(quoted.plan, [{ kind: 'sql', detail: 'ANALYZE "public"."Items"' }]);

  const before = await tableStats(server, 'app', 'items');
  const analyze = await run('postgres.analyze', { ...target, table: 'public.items' });
  t.equal(analyze.status, 'success', analyze.error);
  t.same(analyze.plan, [{ kind: 'sql', detail: 'ANALYZE "public"."items"' }]);
  t.equal(analyze.verification.detail, `analyze_count ${before.analyzeCount} -> ${before.analyzeCount + 1}`);
});

t.test('vacuum without a table: every table over the threshold', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  for (const [table, dead] of [['a', 50], ['b', 300], ['c', 0]] as const) {
    await server.query(`create table ${table} (id int)`, [], 'app');
    await server.query(`insert into ${table} select generate_series(1, 400)`, [], 'app');
    if (dead > 0) await server.query(`delete from ${table} where id <= ${dead}`, [], 'app');
  }
  const { waitFor } = await import('../fixtures/ports.js');
  await waitFor('stats', async () => { if ((await tableStats(server, 'app', 'b')).deadTuples < 300) throw new Error('not yet'); });
  await waitFor('stats', async () => { if ((await tableStats(server, 'app', 'a')).deadTuples < 50) throw new Error('not yet'); });
  const app = await startApp(t, testConfig({
    state: { dir: await tempDir(t) },
    targets: {
      postgres: [
        { name: 'main', url: server.url('app'), tables: { minDeadTuples: 100 } },
        { name: 'filtered', url: server.url('app'), tables: { exclude: ['^public\\.b$'] } },
      ],
    },
  }));
  const filtered = (await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.vacuum?wait=true', payload: { params: { target: 'filtered', database: 'app' }, dryRun: true } })).json();
  t.same(filtered.plan, [{ kind: 'sql', detail: 'VACUUM (ANALYZE) "public"."a"' }], 'every table over the threshold that the filters admit');
  const response = await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.vacuum?wait=true', payload: { params: { target: 'main', database: 'app', analyze: 'false' } } });
  const run = response.json();
  t.equal(run.status, 'success', run.error);
  t.same(run.plan, [{ kind: 'sql', detail: 'VACUUM "public"."b"' }], 'only the table over the target\'s minDeadTuples');
  const lower = (await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.vacuum?wait=true', payload: { params: { target: 'main', database: 'app', minDeadTuples: '10' } } })).json();
  t.same(lower.plan, [{ kind: 'sql', detail: 'VACUUM (ANALYZE) "public"."a"' }], 'minDeadTuples overrides the target');
  const none = (await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.vacuum?wait=true', payload: { params: { target: 'main', database: 'app' } } })).json();
  t.equal(none.status, 'skipped');
  t.match(none.reason, /no table has dead tuples, not over the threshold 100/);
  const missingDb = (await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.vacuum?wait=true', payload: { params: { target: 'main', database: 'nope' } } })).json();
  t.equal(missingDb.status, 'rejected');
  t.match(missingDb.reason, /^database "nope" is not watched by targets.postgres "main" \(databases: auto watches/);
});
