import { readFile } from 'node:fs/promises';
import t from 'tap';
import { vacuum } from '../../src/actions/postgres.js';
import { RunConnections } from '../../src/engine/run-connections.js';
import { SHARED_READING_MS, SHARED_STATISTICS_MS } from '../../src/systems/postgres/catalog-reads.js';
import { findRelation, statsOf } from '../../src/systems/postgres/catalog.js';
import { bufferLogger } from '../fixtures/log.js';
import { waitFor } from '../fixtures/ports.js';
import { buildContext } from './context.js';
import { holdHorizon, startTestPostgres, tableStats, tableWithDeadTuples } from './postgres-fixture.js';

// Dry runs of postgres.vacuum on one database read the tables' statistics and the horizon's
// holders through reads they share (CatalogReads); real runs read on their own sessions.

/** Until what was read before is too old to be given again (the longer of the two). */
const pastSharedReadings = () => new Promise((resolve) => setTimeout(resolve, Math.max(SHARED_READING_MS, SHARED_STATISTICS_MS) + 20));

t.test('dry runs at once share their statistics and horizon reads, and each sees what a read of its own would have', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  // A session holds the horizon; then rows die and a vacuum leaves them all: the next one would be in vain too.
  const holderPid = await holdHorizon(t, server, 'app');
  const tables = ['t1', 't2', 't3', 't4'];
  for (const [at, table] of tables.entries()) {
    await tableWithDeadTuples(server, 'app', table, 1000, 100 * (at + 1));
    await server.query(`vacuum ${table}`, [], 'app');
    await waitFor(`the vacuum of ${table} in the stats`, async () => {
      const stats = await tableStats(server, 'app', table);
      if (stats.vacuumCount !== 1 || stats.deadTuples !== 100 * (at + 1)) throw new Error(JSON.stringify(stats));
    });
  }

  const raw = { targets: { postgres: [{ name: 'main', url: server.url('app'), databases: ['app'] }] } };
  const base = buildContext(raw);
  t.teardown(() => base.close());
  const count = async (statement: string) => (await readFile(server.logFile, 'utf8')).split(`execute upkeep_${statement}:`).length - 1;
  const check = async (table: string, dryRun: boolean) => {
    const connections = new RunConnections(base.config, base.connections, Date.now() + 60_000, 30_000, bufferLogger().log, `run-${table}`, dryRun);
    const context = { ...base, connections, dryRun, memo: new Map<string, Promise<unknown>>() };
    try {
      const params = await vacuum.resolve(vacuum.params.parse({ target: 'main', database: 'app', table }), context);
      return await vacuum.check(params, context);
    } finally {
      await connections.close();
    }
  };

  const before = { stats: await count('stats_of'), many: await count('stats_of_many'), holders: await count('horizon_holders') };
  const dry = await Promise.all(tables.map((table) => check(table, true)));
  const real = [];
  for (const table of tables) real.push(await check(table, false));
  for (const [at, table] of tables.entries()) {
    t.match(dry[at], { proceed: false, reason: /^the vacuum horizon is held by backend pid \d+ \(idle in transaction, / }, `${table}: the dry run names the holder`);
    t.same(withoutAges(dry[at]), withoutAges(real[at]), `${table}: the dry run's check is the real run's`);
  }
  t.equal(await count('stats_of') - before.stats, tables.length, 'the real runs read each table on their own session');
  const shared = await count('stats_of_many') - before.many;
  t.ok(shared >= 1 && shared <= tables.length, `the dry runs read the statistics in ${shared} statement(s)`);

  // Asked in one go, the reads are two: the first starts at once, the rest wait for it and go together.
  await pastSharedReadings();
  const reads = new RunConnections(base.config, base.connections, Date.now() + 60_000, 30_000, bufferLogger().log, 'run-reads', true).catalogReads('main', 'app');
  if (!reads) throw new Error('a dry run has shared reads');
  const oids = await server.query<{ oid: number }>('select oid::int as oid from pg_class where relname = any($1) order by relname', [tables], 'app');
  const manyBefore = await count('stats_of_many');
  const holdersBefore = await count('horizon_holders');
  const [stats, holders] = await Promise.all([
    Promise.all([...oids.map((row) => reads.statsOf(row.oid)), reads.statsOf(1)]),
    Promise.all([reads.horizonHolders(), reads.horizonHolders(), reads.horizonHolders()]),
  ]);
  t.equal(await count('stats_of_many') - manyBefore, 2, 'five tables\' statistics in two statements');
  t.equal(await count('horizon_holders') - holdersBefore, 2, 'three callers\' holders in two statements');
  const again = await Promise.all([reads.statsOf(nth(oids, 0).oid), reads.horizonHolders()]);
  t.same([await count('stats_of_many') - manyBefore, await count('horizon_holders') - holdersBefore], [2, 2], 'asked again at once: nothing more is read');
  t.equal(again[0], stats[0], 'the statistics read a moment ago are given again');
  t.equal(again[1], holders[2], 'so are the holders');
  await new Promise((resolve) => setTimeout(resolve, SHARED_READING_MS + 20));
  t.not(await reads.horizonHolders(), holders[2], 'once that reading is too old, the holders are read again');
  t.equal(await count('horizon_holders') - holdersBefore, 3);
  t.equal(await reads.statsOf(nth(oids, 0).oid), stats[0], 'the statistics, which PostgreSQL itself reports once a second, are still given again');
  t.equal(await count('stats_of_many') - manyBefore, 2);
  await pastSharedReadings();
  t.not(await reads.statsOf(nth(oids, 0).oid), stats[0], 'a second on, they are read again');
  t.equal(await count('stats_of_many') - manyBefore, 3);
  const client = await base.connections.postgres('main', 'app');
  t.teardown(() => client.end());
  for (const [at, row] of oids.entries()) t.same(stats[at], await statsOf(client, row.oid), `the statistics of oid ${row.oid} are statsOf()'s`);
  t.same(stats.at(-1), await statsOf(client, 1), 'an oid the statistics do not know reads as statsOf() reads it');
  t.equal(holders[1], holders[2], 'the two callers that asked during the first read have the second');
  t.not(holders[0], holders[1]);
  t.same(holders.map((found) => found.map((entry) => entry.name)), [[String(holderPid)], [String(holderPid)], [String(holderPid)]], 'the one holder');
  t.equal(new RunConnections(base.config, base.connections, Date.now() + 60_000, 30_000, bufferLogger().log, 'run-real', false).catalogReads('main', 'app'), null, 'a real run reads on its own sessions');

  // Tables named by alerts: every spelling, one that does not exist and one that is ambiguous, found as findRelation() finds them.
  await server.query('create schema "Sales"; create table "Sales"."T1" (id int); create table "Sales".t1 (id int)', [], 'app');
  const texts = ['t1', 'PUBLIC."t2"', 'public.t3', '"public"."t4"', 'nowhere', 'Sales.T1', 'sales.t1', 'Sales.t1'];
  await pastSharedReadings();
  const findBefore = await count('find_relation');
  const outcome = (found: Promise<unknown>) => found.then((relation) => ({ relation }), (err: unknown) => ({ refused: err instanceof Error ? err.message : String(err) }));
  const together = await Promise.all(['t1', ...texts].map((text) => outcome(reads.findTable(text, 'main/app'))));
  t.equal(await count('find_relation') - findBefore, 2, 'nine lookups in two statements');
  const own = [];
  for (const text of ['t1', ...texts]) own.push(await outcome(findRelation(client, text, 'table', 'main/app')));
  t.same(together, own, 'each text finds what findRelation() finds, or is refused with its words');
  t.match(own, [{ relation: { schema: 'public', name: 't1' } }, { relation: { schema: 'public', name: 't1' } }, { relation: { name: 't2' } }, { relation: { name: 't3' } }, { relation: { name: 't4' } },
    { refused: 'table "nowhere" does not exist in main/app' }, { relation: { schema: 'Sales', name: 'T1' } }, { refused: /^table "sales.t1" does not exist/ }, { relation: { schema: 'Sales', name: 't1' } }]);
});

function nth<T>(list: readonly T[], n: number): T {
  const item = list[n];
  if (item === undefined) throw new Error(`no item ${n} of ${list.length}`);
  return item;
}

/** A check with the ages and idle times (which move between two reads) left out. */
function withoutAges(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (key, field: unknown) => (['age', 'idle_seconds', 'xidAge', 'reason'].includes(key) ? undefined : field)));
}

t.test('a shared read that fails fails the dry runs it answers, with the error; once the server is back the next read works', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await tableWithDeadTuples(server, 'app', 'orders', 1000, 100);
  const base = buildContext({ targets: { postgres: [{ name: 'main', url: server.url('app'), databases: ['app'] }] } });
  t.teardown(() => base.close());
  const reads = () => {
    const found = new RunConnections(base.config, base.connections, Date.now() + 60_000, 30_000, bufferLogger().log, 'run-reads', true).catalogReads('main', 'app');
    if (!found) throw new Error('a dry run has shared reads');
    return found;
  };
  const before = await reads().findTable('orders', 'main/app');
  await pastSharedReadings();
  await server.stop('immediate');
  const failed = await Promise.allSettled([reads().findTable('orders', 'main/app'), reads().statsOf(before.oid), reads().horizonHolders()]);
  t.same(failed.map((result) => result.status), ['rejected', 'rejected', 'rejected'], 'every caller is told');
  t.ok(failed.every((result) => result.status === 'rejected' && result.reason instanceof Error && result.reason.message.length > 0), 'with the driver\'s error');
  await server.start();
  t.same(await reads().findTable('orders', 'main/app'), before, 'the next read takes a new session');
  const client = await base.connections.postgres('main', 'app');
  t.teardown(() => client.end());
  // An immediate stop discards the statistics: what the shared read says is what a read of one's own says now.
  t.same(await reads().statsOf(before.oid), await statsOf(client, before.oid));
});
