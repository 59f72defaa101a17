import { readFile } from 'node:fs/promises';
import t from 'tap';
import { analyze, vacuum } from '../../src/actions/postgres.js';
import { buildContext } from './context.js';
import { startTestPostgres, tableWithDeadTuples } from './postgres-fixture.js';

// A dry run looks a named table up in the catalog once: resolve finds it by the name the alert
// gave, and check and plan find it under the catalog's spelling resolve gave back.

t.test('resolve, check and plan of one table share one catalog lookup per dry run; a real run looks again', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await tableWithDeadTuples(server, 'app', 'orders');
  // Every statement is in the server's log (log_statement: all); the lookup is a named statement.
  const lookups = async () => (await readFile(server.logFile, 'utf8')).split('execute upkeep_find_relation').length - 1;
  const raw = { targets: { postgres: [{ name: 'main', url: server.url('app'), databases: ['app'] }] } };

  const run = async (dryRun = true) => {
    const context = { ...buildContext(raw), memo: new Map<string, Promise<unknown>>(), dryRun };
    try {
      const params = await vacuum.resolve(vacuum.params.parse({ target: 'main', database: 'app', table: 'ORDERS', minDeadTuples: 10 }), context);
      const check = await vacuum.check(params, context);
      const plan = await vacuum.plan(params, context);
      return { params, check, plan };
    } finally {
      await context.close();
    }
  };
  const before = await lookups();
  const first = await run();
  t.equal(first.params.table, '"public"."orders"', 'resolve gave back the catalog\'s spelling');
  t.match(first.check, { proceed: true, reason: 'public.orders: 400 dead tuples' });
  t.same(first.plan.payload, { statements: ['VACUUM (ANALYZE) "public"."orders"'] });
  t.equal(await lookups() - before, 1, 'one lookup for resolve, check and plan');
  await run();
  t.equal(await lookups() - before, 2, 'the next run looks the table up again');
  await run(false);
  t.equal(await lookups() - before, 4, 'a real run looks it up in resolve and again in check');

  const context = { ...buildContext(raw), memo: new Map<string, Promise<unknown>>(), dryRun: true };
  t.teardown(() => context.close());
  const params = await analyze.resolve(analyze.params.parse({ target: 'main', database: 'app', table: 'orders' }), context);
  await analyze.check(params, context);
  await analyze.plan(params, context);
  t.equal(await lookups() - before, 5, 'postgres.analyze too');
});

t.test('with databases: auto, dry runs accept a database on a recent discovery; real runs ask each time', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await tableWithDeadTuples(server, 'app', 'orders');
  const discoveries = async () => (await readFile(server.logFile, 'utf8')).split('execute upkeep_discover_databases').length - 1;
  const raw = { targets: { postgres: [{ name: 'main', url: server.url('app'), discoverRefreshSeconds: 60 }] } };
  let clock = Date.now();
  const resolve = async (dryRun: boolean, database = 'app') => {
    const context = { ...buildContext(raw), memo: new Map<string, Promise<unknown>>(), dryRun, now: () => clock };
    try {
      return await vacuum.resolve(vacuum.params.parse({ target: 'main', database, table: 'orders' }), context);
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    } finally {
      await context.close();
    }
  };
  const before = await discoveries();
  t.match(await resolve(true), { table: '"public"."orders"' });
  t.match(await resolve(true), { table: '"public"."orders"' });
  t.equal(await discoveries() - before, 1, 'the second dry run used the first one\'s discovery');
  await resolve(false);
  await resolve(false);
  t.equal(await discoveries() - before, 3, 'a real run asks the server every time');

  await server.query('create database reports');
  await server.query('create table orders (id int)', [], 'reports');
  t.match(await resolve(true, 'reports'), { table: '"public"."orders"' }, 'a database created since the discovery is found by asking again');
  t.equal(await discoveries() - before, 4);
  t.equal(await resolve(true, 'template0'), 'database "template0" is not watched by targets.postgres "main" (databases: auto watches the databases that exist, accept connections, are not templates and grant upkeep CONNECT; a manual or CLI run can go further with outsideFilters: true)',
    'a database discovery does not find is refused after asking afresh');
  t.equal(await discoveries() - before, 5);
  clock += 61_000;
  await resolve(true);
  t.equal(await discoveries() - before, 6, 'a discovery older than discoverRefreshSeconds is not used');
});
