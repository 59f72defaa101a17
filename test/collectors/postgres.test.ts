import pg from 'pg';
import t from 'tap';
import { startPostgres, type PostgresServer } from '../fixtures/postgres.js';
import { waitFor } from '../fixtures/ports.js';
import { byLabels, testApp, valueOf, type Sample } from './helpers.js';

const TABLES = 500;
// Known dead tuples per table: app1 t_i has i % 17, app2 t_i has i % 11; audit.events in app1 has 1000.
const DEAD: Record<string, (i: number) => number> = { app1: (i) => i % 17, app2: (i) => i % 11 };
const TABLE_KEYS = ['database', 'schema', 'table'];

async function createTables(server: PostgresServer, database: string): Promise<void> {
  await server.query(`CREATE DATABASE ${database}`);
  const dead = database === 'app1' ? 'i % 17' : 'i % 11';
  await server.query(`DO $$ BEGIN
    FOR i IN 0..${TABLES - 1} LOOP
      EXECUTE format('CREATE TABLE %I (id int, v text)', 't_' || lpad(i::text, 3, '0'));
      EXECUTE format('INSERT INTO %I SELECT g, ''x'' FROM generate_series(1, %s) g', 't_' || lpad(i::text, 3, '0'), 20 + i % 30);
      EXECUTE format('DELETE FROM %I WHERE id <= %s', 't_' || lpad(i::text, 3, '0'), ${dead});
    END LOOP;
  END $$`, [], database);
}

/** pg_stat_user_tables itself, as "database/schema/table" -> value. */
async function groundTruth(server: PostgresServer, column: string, databases = ['app1', 'app2']): Promise<Map<string, number>> {
  const truth = new Map<string, number>();
  for (const database of databases) {
    const rows = await server.query<{ schemaname: string; relname: string; value: number | null }>(`SELECT schemaname, relname, ${column} AS value FROM pg_stat_user_tables`, [], database);
    for (const row of rows) if (row.value !== null) truth.set(`${database}/${row.schemaname}/${row.relname}`, Number(row.value));
  }
  return truth;
}

function targetYaml(server: PostgresServer, extra = '', name = 'main'): string {
  return `targets:\n  postgres:\n    - name: ${name}\n      url: ${server.url()}\n${extra.split('\n').map((line) => `      ${line}`).join('\n')}\n`;
}

const tableNames = (samples: Sample[]) => [...byLabels(samples, 'upkeep_postgres_dead_tuples', TABLE_KEYS).keys()];

t.test('postgres collector', async (t) => {
  // Autovacuum off, so the dead tuples stay exactly where the fixture put them.
  const server = await startPostgres({ settings: { autovacuum: 'off' } });
  t.teardown(() => server.destroy());
  await createTables(server, 'app1');
  await createTables(server, 'app2');
  await server.query('CREATE SCHEMA audit; CREATE TABLE audit.events (id int); INSERT INTO audit.events SELECT generate_series(1, 1500); DELETE FROM audit.events WHERE id <= 1000', [], 'app1');
  await server.query('VACUUM t_001', [], 'app1');
  await server.query('ANALYZE t_002', [], 'app1');
  // Index usage: t_003's index is never scanned (counted), t_004's is unique (never counted), t_005's is used.
  await server.query('CREATE INDEX t_003_v ON t_003 (v); CREATE UNIQUE INDEX t_004_id ON t_004 (id); CREATE INDEX t_005_v ON t_005 (v)', [], 'app1');
  await server.query("SET enable_seqscan = off; SELECT count(*) FROM t_005 WHERE v = 'x'", [], 'app1');
  const expected = (database: string, i: number) => (database === 'app1' && i === 1 ? 0 : DEAD[database]!(i));
  // Statistics reach pg_stat_user_tables when the writing backend exits: wait until they all have.
  await waitFor('table statistics', async () => {
    const truth = await groundTruth(server, 'n_dead_tup');
    for (const database of ['app1', 'app2']) {
      for (let i = 0; i < TABLES; i += 1) {
        const name = `${database}/public/t_${String(i).padStart(3, '0')}`;
        if (truth.get(name) !== expected(database, i)) throw new Error(`${name}: ${truth.get(name)}`);
      }
    }
    if (truth.get('app1/audit/events') !== 1000) throw new Error('audit.events not flushed yet');
  });

  t.test('ground truth: every exported value equals what PostgreSQL reports, across two databases', async (t) => {
    const app = await testApp(t, targetYaml(server, 'databases: [app1, app2]\ntables: { limit: 5000 }'));
    const { status, samples } = await app.scrape();
    t.equal(status, 200);
    t.equal(valueOf(samples, 'upkeep_postgres_up', { target: 'main' }), 1);
    const dead = byLabels(samples, 'upkeep_postgres_dead_tuples', TABLE_KEYS);
    t.equal(dead.size, 2 * TABLES + 1, 'every table of both databases, nothing from the postgres database');
    t.same(dead, await groundTruth(server, 'n_dead_tup'), 'dead tuples equal pg_stat_user_tables');
    t.equal(dead.get('app1/public/t_016'), 16, 'and the known numbers');
    t.equal(dead.get('app2/public/t_010'), 10);
    t.same(byLabels(samples, 'upkeep_postgres_live_tuples', TABLE_KEYS), await groundTruth(server, 'n_live_tup'), 'live tuples equal pg_stat_user_tables');
    t.same(byLabels(samples, 'upkeep_postgres_last_vacuum_timestamp_seconds', TABLE_KEYS),
      await groundTruth(server, 'extract(epoch FROM greatest(last_vacuum, last_autovacuum))::float8'), 'only the vacuumed table, at its time');
    const analyzed = byLabels(samples, 'upkeep_postgres_last_analyze_timestamp_seconds', TABLE_KEYS);
    t.same(analyzed, await groundTruth(server, 'extract(epoch FROM greatest(last_analyze, last_autoanalyze))::float8'), 'only the analyzed table, at its time');
    t.same([...analyzed.keys()], ['app1/public/t_002']);
    t.same(byLabels(samples, 'upkeep_postgres_table_size_bytes', TABLE_KEYS), await groundTruth(server, 'pg_table_size(relid)::float8'), 'sizes equal pg_table_size');
    for (const database of ['app1', 'app2']) {
      const [size] = await server.query<{ bytes: number }>('SELECT pg_database_size(current_database())::float8 AS bytes', [], database);
      t.equal(valueOf(samples, 'upkeep_postgres_database_size_bytes', { database }), size?.bytes, `${database} size equals pg_database_size`);
      t.equal(valueOf(samples, 'upkeep_postgres_database_up', { database }), 1);
      t.equal(valueOf(samples, 'upkeep_postgres_oldest_transaction_age_seconds', { database }), 0, 'no open transaction');
      t.ok(valueOf(samples, 'upkeep_collector_cache_age_seconds', { reading: `sizes:${database}` }) !== undefined, 'size cache age is exported');
    }
    const [index] = await server.query<{ bytes: number }>("SELECT pg_relation_size('t_003_v')::float8 AS bytes", [], 'app1');
    t.equal(valueOf(samples, 'upkeep_postgres_unused_indexes', { database: 'app1' }), 1, 'only the never-scanned, non-unique index');
    t.equal(valueOf(samples, 'upkeep_postgres_unused_index_bytes', { database: 'app1' }), index?.bytes);
    t.equal(valueOf(samples, 'upkeep_postgres_unused_indexes', { database: 'app2' }), 0);
  });

  t.test('oldest transaction age is the age of an open transaction', async (t) => {
    const client = new pg.Client({ connectionString: server.url('app2') });
    await client.connect();
    t.teardown(() => client.end());
    await client.query('BEGIN');
    const { rows: [backend] } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid, txid_current()');
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const [row] = await server.query<{ age: number }>('SELECT extract(epoch FROM now() - xact_start)::float8 AS age FROM pg_stat_activity WHERE pid = $1', [backend?.pid], 'app2');
    const app = await testApp(t, targetYaml(server, 'databases: [app2]'));
    const age = valueOf((await app.scrape()).samples, 'upkeep_postgres_oldest_transaction_age_seconds', { database: 'app2' });
    t.ok(age !== undefined && row !== undefined && age >= row.age && row.age >= 1, `exported ${age}s, at least the ${row?.age}s measured before the scrape`);
  });

  t.test('bounds: limit, include, exclude and minDeadTuples give exactly the series they say', async (t) => {
    const cases: [string, string[]][] = [
      ['tables: { limit: 5 }', ['app1/audit/events', 'app1/public/t_016', 'app1/public/t_033', 'app1/public/t_050', 'app1/public/t_067']],
      ["tables: { include: ['^audit\\.', 't_49[0-9]$'] }", ['app1/audit/events',
        ...['app1', 'app2'].flatMap((database) => Array.from({ length: 10 }, (_, i) => `${database}/public/t_49${i}`))]],
      ["tables: { exclude: ['^public\\.'] }", ['app1/audit/events']],
      ["tables: { minDeadTuples: 16, exclude: ['^audit\\.'] }", Array.from({ length: 29 }, (_, k) => `app1/public/t_${String(16 + 17 * k).padStart(3, '0')}`)],
      ["tables: { minDeadTuples: 10, include: ['t_0[0-9][0-9]$'], exclude: ['t_0[5-9][0-9]$'], limit: 4 }", ['app1/public/t_016', 'app1/public/t_033', 'app1/public/t_015', 'app1/public/t_032']],
    ];
    for (const [filter, series] of cases) {
      const app = await testApp(t, targetYaml(server, `databases: [app1, app2]\n${filter}`));
      const { samples } = await app.scrape();
      t.same(tableNames(samples).sort(), [...series].sort(), filter);
      t.same([...byLabels(samples, 'upkeep_postgres_live_tuples', TABLE_KEYS).keys()].sort(), [...series].sort(), 'the other per-table families follow the same set');
      t.ok(byLabels(samples, 'upkeep_postgres_table_size_bytes', TABLE_KEYS).size <= series.length);
    }
  });

  t.test('one database failing is reported per database; all failing takes the target down', async (t) => {
    const partial = await testApp(t, targetYaml(server, 'databases: [app1, nosuch]'));
    await partial.scrape();
    const { samples } = await partial.scrape();
    t.equal(valueOf(samples, 'upkeep_postgres_up', { target: 'main' }), 1);
    t.equal(valueOf(samples, 'upkeep_postgres_database_up', { database: 'app1' }), 1);
    t.equal(valueOf(samples, 'upkeep_postgres_database_up', { database: 'nosuch' }), 0);
    t.ok(tableNames(samples).length > 0, 'app1 is still exported');
    const warnings = partial.logs.filter((entry) => entry.msg === 'postgres database collection failed');
    t.equal(warnings.length, 1, 'logged once, not every scrape');
    t.match(warnings[0], { database: 'nosuch', err: /database "nosuch": database "nosuch" does not exist/ });

    const down = await testApp(t, targetYaml(server, 'databases: [nosuch]'));
    const result = await down.scrape();
    t.equal(result.status, 200);
    t.equal(valueOf(result.samples, 'upkeep_postgres_up', { target: 'main' }), 0);
    t.equal(valueOf(result.samples, 'upkeep_collector_up', { collector: 'postgres', target: 'main' }), 0);
  });

  t.test('databases: auto finds new databases and forgets dropped ones', async (t) => {
    const app = await testApp(t, targetYaml(server, 'databases: auto\ndiscoverRefreshSeconds: 0.1'));
    const databasesUp = async () => [...byLabels((await app.scrape()).samples, 'upkeep_postgres_database_up', ['database']).keys()].sort();
    t.same(await databasesUp(), ['app1', 'app2', 'postgres'], 'every connectable non-template database');
    await server.query('CREATE DATABASE app3');
    await waitFor('app3 discovered', async () => { if (!(await databasesUp()).includes('app3')) throw new Error('not yet'); });
    await server.query('DROP DATABASE app3 WITH (FORCE)');
    await waitFor('app3 forgotten', async () => { if ((await databasesUp()).includes('app3')) throw new Error('not yet'); });
    t.same(await databasesUp(), ['app1', 'app2', 'postgres']);
  });

  t.test('a table locked by ALTER or VACUUM FULL never hangs the scrape: sizes come from cache', async (t) => {
    const yaml = targetYaml(server, 'databases: [app2]\nsizeRefreshSeconds: 0.1');
    const warm = await testApp(t, yaml);
    const before = byLabels((await warm.scrape()).samples, 'upkeep_postgres_table_size_bytes', TABLE_KEYS);
    t.equal(before.size, TABLES);
    const locker = new pg.Client({ connectionString: server.url('app2') });
    await locker.connect();
    t.teardown(() => locker.end());
    await locker.query('BEGIN; LOCK TABLE t_000 IN ACCESS EXCLUSIVE MODE');
    // The refresh waits for the lock (lock_timeout 2s), fails, and the last sizes keep being served.
    await waitFor('size refresh failure', async () => {
      const { samples } = await warm.scrape();
      t.same(byLabels(samples, 'upkeep_postgres_table_size_bytes', TABLE_KEYS), before);
      if (!warm.logs.some((entry) => entry.msg === 'postgres size refresh failed; serving the last sizes read')) throw new Error('not yet');
    }, 20_000, 200);
    const cold = await testApp(t, yaml);
    const { samples } = await cold.scrape();
    t.equal(valueOf(samples, 'upkeep_postgres_database_up', { database: 'app2' }), 1, 'the database is up');
    t.equal(byLabels(samples, 'upkeep_postgres_table_size_bytes', TABLE_KEYS).size, 0, 'with no sizes ever read, there are no size series');
    t.equal(tableNames(samples).length, TABLES, 'but the tuple counts are there');
    // With a 2 s scrape timeout the first size read is waited for 1 s: it is still waiting for the lock then.
    const quick = await testApp(t, `${yaml}collectors: { timeoutSeconds: 2 }\n`);
    const first = await quick.scrape();
    t.equal(valueOf(first.samples, 'upkeep_postgres_up'), 1, 'the first scrape does not wait for sizes past half its timeout');
    t.equal(byLabels(first.samples, 'upkeep_postgres_table_size_bytes', TABLE_KEYS).size, 0);
    t.equal(tableNames(first.samples).length, TABLES);
    await locker.query('ROLLBACK');
  });

  t.test('statements enabled where pg_stat_statements is not preloaded: logged once, the rest exported', async (t) => {
    await server.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements', [], 'app2');
    const app = await testApp(t, targetYaml(server, 'databases: [app2]\nstatements: { enabled: true }'));
    await app.scrape();
    const { samples } = await app.scrape();
    t.equal(valueOf(samples, 'upkeep_postgres_database_up', { database: 'app2' }), 1);
    t.equal(samples.filter((sample) => sample.name.startsWith('upkeep_postgres_statement')).length, 0);
    t.equal(app.logs.filter((entry) => entry.msg === 'cannot read pg_stat_statements; statement metrics skipped').length, 1);
  });

  t.test('least privilege: pg_monitor is enough; without it other sessions are invisible', async (t) => {
    await server.query('CREATE ROLE upkeep_monitor LOGIN; GRANT pg_monitor TO upkeep_monitor; CREATE ROLE upkeep_plain LOGIN');
    const other = new pg.Client({ connectionString: server.url('app2') });
    await other.connect();
    t.teardown(() => other.end());
    await other.query('BEGIN');
    await other.query('SELECT txid_current()');
    const asRole = (role: string) => `targets:\n  postgres:\n    - { name: main, url: "${server.url().replace('postgres@', `${role}@`)}", databases: [app1, app2], tables: { limit: 5000 } }\n`;
    const monitor = (await (await testApp(t, asRole('upkeep_monitor'))).scrape()).samples;
    t.equal(valueOf(monitor, 'upkeep_postgres_up'), 1);
    t.ok((valueOf(monitor, 'upkeep_postgres_oldest_transaction_age_seconds', { database: 'app2' }) ?? 0) > 0, 'sees the open transaction of another role');
    t.equal(tableNames(monitor).length, 2 * TABLES + 1);
    t.equal(byLabels(monitor, 'upkeep_postgres_table_size_bytes', TABLE_KEYS).size, 2 * TABLES + 1, 'reads every table size');
    t.equal(valueOf(monitor, 'upkeep_postgres_unused_indexes', { database: 'app1' }), 1);
    t.ok((valueOf(monitor, 'upkeep_postgres_database_size_bytes', { database: 'app1' }) ?? 0) > 0);
    const plain = (await (await testApp(t, asRole('upkeep_plain'))).scrape()).samples;
    t.equal(valueOf(plain, 'upkeep_postgres_up'), 1);
    t.equal(valueOf(plain, 'upkeep_postgres_oldest_transaction_age_seconds', { database: 'app2' }), undefined, 'a role without pg_monitor cannot see it: no age (it read 0)');
    t.equal(byLabels(plain, 'upkeep_postgres_table_size_bytes', TABLE_KEYS).size, 2 * TABLES + 1, 'the rest as pg_monitor reads it');
    await other.query('ROLLBACK');
  });

  t.test('faults: PostgreSQL stopped mid-run, then back, without rebuilding the app', async (t) => {
    const app = await testApp(t, targetYaml(server, 'databases: auto\ntables: { limit: 5000 }\nxidAgeRefreshSeconds: 0.1'));
    const ages = (samples: Sample[]) => byLabels(samples, 'upkeep_postgres_table_xid_age', TABLE_KEYS);
    const up = await app.scrape();
    t.equal(valueOf(up.samples, 'upkeep_postgres_up', { target: 'main' }), 1);
    // Past the xid ages' interval: the scrape while the server is down asks for their background read, which fails.
    await new Promise((resolve) => setTimeout(resolve, 200));
    await server.stop();
    const down = await app.scrape();
    t.equal(down.status, 200, '/metrics still answers');
    t.equal(valueOf(down.samples, 'upkeep_postgres_up', { target: 'main' }), 0);
    t.equal(valueOf(down.samples, 'upkeep_collector_up', { collector: 'postgres', target: 'main' }), 0);
    t.equal(tableNames(down.samples).length, 0, 'no stale table series');
    t.equal(ages(down.samples).size, 0, 'nor the cached xid ages');
    // The read that scrape asked for starts a second after it, while the server is still down.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await server.start();
    const back = await app.scrape();
    t.equal(valueOf(back.samples, 'upkeep_postgres_up', { target: 'main' }), 1, 'up again on the next scrape');
    t.equal(valueOf(back.samples, 'upkeep_collector_up', { collector: 'postgres', target: 'main' }), 1);
    t.equal(tableNames(back.samples).length, 2 * TABLES + 1);
    // The failed background read is reported once per database, and the ages read before the stop are served meanwhile.
    const failed = app.logs.filter((entry) => entry.msg === 'postgres table xid age refresh failed; serving the last ages read');
    t.same(failed.map((entry) => entry.database).sort(), ['app1', 'app2', 'postgres'], 'logged once for each database');
    t.match(failed, failed.map(() => ({ level: 40, target: 'main', err: /\S/ })));
    t.same(ages(back.samples), ages(up.samples), 'the last ages read are exported');
    const readingAges = byLabels(back.samples, 'upkeep_collector_cache_age_seconds', ['reading']);
    t.ok((readingAges.get('xid_ages:app1') ?? 0) > 0.2, `with their age (${readingAges.get('xid_ages:app1')} s)`);
  });
});

t.test('top statements by total time from pg_stat_statements', async (t) => {
  const server = await startPostgres({ settings: { shared_preload_libraries: 'pg_stat_statements' } });
  t.teardown(() => server.destroy());
  await server.query('CREATE EXTENSION pg_stat_statements');
  await server.query('CREATE DATABASE plain');
  for (let i = 0; i < 5; i += 1) await server.query('SELECT pg_sleep(0.05)');
  const app = await testApp(t, targetYaml(server, 'databases: [postgres, plain]\nstatements: { enabled: true, limit: 2 }'));
  const { samples } = await app.scrape();
  const seconds = byLabels(samples, 'upkeep_postgres_statement_seconds_total', ['database', 'queryid']);
  t.equal(seconds.size, 2, 'the top 2, only where the extension is installed');
  const [sleep] = await server.query<{ queryid: string; seconds: number; calls: number }>(
    "SELECT queryid::text, sum(total_exec_time)::float8 / 1000 AS seconds, sum(calls)::float8 AS calls FROM pg_stat_statements WHERE query LIKE 'SELECT pg_sleep%' GROUP BY queryid");
  t.ok(sleep);
  t.equal(seconds.get(`postgres/${sleep?.queryid}`), sleep?.seconds, 'total time equals pg_stat_statements');
  t.equal(valueOf(samples, 'upkeep_postgres_statement_calls_total', { queryid: sleep?.queryid ?? '' }), 5);
});
