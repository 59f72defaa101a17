import pg from 'pg';
import t from 'tap';
import { startPostgres, type PostgresServer } from '../fixtures/postgres.js';
import { waitFor } from '../fixtures/ports.js';
import { byLabels, testApp, valueOf, type Sample, type TestApp } from './helpers.js';

// The server-wide families (wraparound, horizon, activity), each compared with what PostgreSQL
// itself reports. Autovacuum is off so nothing but the test consumes transaction IDs.

function targetYaml(server: PostgresServer, extra = ''): string {
  return `targets:\n  postgres:\n    - name: main\n      url: ${server.url()}\n      databases: [postgres, app]\n${extra.split('\n').map((line) => `      ${line}`).join('\n')}\n`;
}

async function client(server: PostgresServer, applicationName: string, database = 'app'): Promise<pg.Client> {
  const connection = new pg.Client({ connectionString: server.url(database), application_name: applicationName });
  await connection.connect();
  return connection;
}

/** Consumes `count` transaction IDs, one committed transaction each. */
async function consumeXids(server: PostgresServer, count: number, database = 'app'): Promise<void> {
  await server.query(`DO $$ BEGIN FOR i IN 1..${count} LOOP PERFORM txid_current(); COMMIT; END LOOP; END $$`, [], database);
}

/** Scrapes until `check` passes: counters PostgreSQL flushes from other backends land within a second or so. */
async function scrapeUntil(app: TestApp, what: string, check: (samples: Sample[]) => Promise<string | null>): Promise<Sample[]> {
  return waitFor(what, async () => {
    const { samples } = await app.scrape();
    const problem = await check(samples);
    if (problem !== null) throw new Error(problem);
    return samples;
  }, 15_000, 200);
}

t.test('postgres server-wide metrics', async (t) => {
  const server = await startPostgres({ settings: { autovacuum: 'off', max_prepared_transactions: '5', wal_level: 'logical' } });
  t.teardown(() => server.destroy());
  await server.query('CREATE DATABASE app');
  // Tables created between batches of transactions, so each has its own relfrozenxid age; int
  // columns only, so no TOAST table. wide has a TOAST table (text) of the same age as itself.
  for (const [index, table] of ['t_old', 't_mid', 't_new'].entries()) {
    await server.query(`CREATE TABLE ${table} (id int)`, [], 'app');
    await consumeXids(server, 1000 * (3 - index));
  }
  await server.query('CREATE TABLE wide (id int, body text); CREATE SCHEMA audit; CREATE TABLE audit.events (id int)', [], 'app');
  await consumeXids(server, 500);

  t.test('wraparound: every database\'s age(datfrozenxid) and mxid_age(datminmxid), the setting, the oldest tables', async (t) => {
    const app = await testApp(t, targetYaml(server, 'tables: { limit: 3 }'));
    const { samples } = await app.scrape();
    const truth = await server.query<{ datname: string; xid: number; mxid: number }>('SELECT datname, age(datfrozenxid) AS xid, mxid_age(datminmxid) AS mxid FROM pg_database');
    t.same([...byLabels(samples, 'upkeep_postgres_xid_age', ['database']).keys()].sort(), ['app', 'postgres', 'template0', 'template1'], 'every database, watched or not');
    for (const row of truth) {
      t.equal(valueOf(samples, 'upkeep_postgres_xid_age', { database: row.datname }), row.xid, `${row.datname} xid age`);
      t.equal(valueOf(samples, 'upkeep_postgres_mxid_age', { database: row.datname }), row.mxid, `${row.datname} mxid age`);
    }
    t.ok((valueOf(samples, 'upkeep_postgres_xid_age', { database: 'app' }) ?? 0) > 6500, 'the consumed IDs show');
    const [setting] = await server.query<{ value: string }>("SELECT current_setting('autovacuum_freeze_max_age') AS value");
    t.equal(valueOf(samples, 'upkeep_postgres_freeze_max_age', { target: 'main' }), Number(setting?.value));

    const tableAges = byLabels(samples, 'upkeep_postgres_table_xid_age', ['database', 'schema', 'table']);
    const ages = await server.query<{ relname: string; age: number }>("SELECT relname, age(relfrozenxid) AS age FROM pg_class WHERE relname IN ('t_old', 't_mid', 't_new')", [], 'app');
    const expected = new Map(ages.map((row) => [`app/public/${row.relname}`, row.age]));
    t.same(tableAges, expected, 'the 3 oldest tables (limit 3), at their age(relfrozenxid)');
    t.same([...tableAges.keys()], ['app/public/t_old', 'app/public/t_mid', 'app/public/t_new'], 'oldest first');
  });

  t.test('wraparound: the TOAST table counts, filters apply, a frozen table gets younger', async (t) => {
    const app = await testApp(t, targetYaml(server, "tables: { exclude: ['^public\\.t_'] }"));
    await server.query('VACUUM (FREEZE) audit.events', [], 'app');
    const tableAges = byLabels((await app.scrape()).samples, 'upkeep_postgres_table_xid_age', ['database', 'schema', 'table']);
    const [wide] = await server.query<{ age: number }>(
      "SELECT greatest(age(c.relfrozenxid), age(t.relfrozenxid)) AS age FROM pg_class c JOIN pg_class t ON t.oid = c.reltoastrelid WHERE c.relname = 'wide'", [], 'app');
    const [events] = await server.query<{ age: number }>("SELECT age(relfrozenxid) AS age FROM pg_class WHERE oid = 'audit.events'::regclass", [], 'app');
    t.same(tableAges, new Map([['app/public/wide', wide?.age], ['app/audit/events', events?.age]]), 'public.t_* excluded, nothing from the postgres database');
    t.ok((events?.age ?? Infinity) < (wide?.age ?? 0), 'VACUUM FREEZE made audit.events younger');
  });

  t.test('wraparound: the tables\' ages are read again every xidAgeRefreshSeconds, or by every scrape with 0; the databases\' by every scrape', async (t) => {
    const scrapeAges = async (app: TestApp) => {
      const { samples } = await app.scrape();
      return {
        tables: byLabels(samples, 'upkeep_postgres_table_xid_age', ['database', 'schema', 'table']), app: valueOf(samples, 'upkeep_postgres_xid_age', { database: 'app' }) ?? 0,
        readingAge: byLabels(samples, 'upkeep_collector_cache_age_seconds', ['reading']).get('xid_ages:app'),
      };
    };
    const plusFifty = (ages: Map<string, number>) => new Map([...ages].map(([table, age]) => [table, age + 50]));

    const kept = await testApp(t, targetYaml(server, 'xidAgeRefreshSeconds: 3600'));
    const first = await scrapeAges(kept);
    await consumeXids(server, 50);
    const second = await scrapeAges(kept);
    t.equal(second.app, first.app + 50, 'the database\'s age is read again');
    t.same(second.tables, first.tables, 'the tables\' ages are the first reading\'s, within the hour');
    t.ok(second.tables.size >= 5, `every table (${second.tables.size})`);
    t.ok(second.readingAge !== undefined && second.readingAge >= 0 && second.readingAge < 60, `the reading's age is exported (${second.readingAge} s)`);

    const everyScrape = await testApp(t, targetYaml(server, 'xidAgeRefreshSeconds: 0'));
    const before = await scrapeAges(everyScrape);
    await consumeXids(server, 50);
    const after = await scrapeAges(everyScrape);
    t.same(after.tables, plusFifty(before.tables), '0: read by every scrape');
    t.equal(after.readingAge, undefined, 'and not a cached reading: no age');
  });

  t.test('horizon: an idle-in-transaction backend, a logical slot and a prepared transaction, each named', async (t) => {
    await server.query("SELECT pg_create_logical_replication_slot('logical_held', 'test_decoding')");
    await server.query("SELECT pg_create_physical_replication_slot('physical_idle', true)");
    t.teardown(() => server.query("SELECT pg_drop_replication_slot('logical_held'); SELECT pg_drop_replication_slot('physical_idle')"));
    const holder = await client(server, 'holder-app');
    t.teardown(() => holder.end());
    await holder.query('BEGIN');
    const { rows: [held] } = await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid, txid_current()');
    await server.query("BEGIN; SELECT txid_current(); PREPARE TRANSACTION 'prepared_held'", [], 'app');
    t.teardown(() => server.query("ROLLBACK PREPARED 'prepared_held'", [], 'app'));
    await consumeXids(server, 100);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const [idle] = await server.query<{ seconds: number }>('SELECT extract(epoch FROM now() - state_change)::float8 AS seconds FROM pg_stat_activity WHERE pid = $1', [held?.pid]);

    const app = await testApp(t, targetYaml(server));
    const { samples } = await app.scrape();
    const [truth] = await server.query<{ backend: number; slot: number; prepared: number }>(`SELECT
      (SELECT greatest(age(backend_xid), age(backend_xmin)) FROM pg_stat_activity WHERE pid = $1) AS backend,
      (SELECT greatest(age(xmin), age(catalog_xmin)) FROM pg_replication_slots WHERE slot_name = 'logical_held') AS slot,
      (SELECT age(transaction) FROM pg_prepared_xacts WHERE gid = 'prepared_held') AS prepared`, [held?.pid]);
    t.equal(valueOf(samples, 'upkeep_postgres_oldest_xmin_age', { holder: 'backend' }), truth?.backend, 'backend: the idle session\'s xid age');
    t.equal(valueOf(samples, 'upkeep_postgres_oldest_xmin_age', { holder: 'replication_slot' }), truth?.slot, 'replication_slot: the logical slot\'s catalog_xmin age');
    t.equal(valueOf(samples, 'upkeep_postgres_oldest_xmin_age', { holder: 'prepared_xact' }), truth?.prepared);
    t.equal(valueOf(samples, 'upkeep_postgres_oldest_xmin_age', { holder: 'standby' }), 0, 'no standby');
    t.ok((truth?.backend ?? 0) > 100 && (truth?.prepared ?? 0) > 100, 'ages grew by the IDs consumed since');

    const info = samples.filter((sample) => sample.name === 'upkeep_postgres_oldest_xmin_backend_info');
    t.same(info.map((sample) => sample.labels), [{ target: 'main', pid: String(held?.pid), database: 'app', user: 'postgres', state: 'idle in transaction', application_name: 'holder-app', client_addr: '127.0.0.1' }],
      'the holder: pid, database, user, state, application, address; never its query');
    t.equal(valueOf(samples, 'upkeep_postgres_idle_in_transaction_sessions'), 1);
    const oldest = valueOf(samples, 'upkeep_postgres_idle_in_transaction_oldest_seconds') ?? 0;
    t.ok(idle && oldest >= idle.seconds && idle.seconds >= 1, `idle for ${oldest}s, at least the ${idle?.seconds}s measured before`);

    const slots = await server.query<{ slot_name: string; active: boolean; retained: number; xmin_age: number | null }>(
      'SELECT slot_name, active, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 AS retained, greatest(age(xmin), age(catalog_xmin)) AS xmin_age FROM pg_replication_slots');
    for (const slot of slots) {
      t.equal(valueOf(samples, 'upkeep_postgres_replication_slot_active', { slot: slot.slot_name }), 0, `${slot.slot_name} is inactive`);
      t.equal(valueOf(samples, 'upkeep_postgres_replication_slot_xmin_age', { slot: slot.slot_name }), slot.xmin_age ?? 0, `${slot.slot_name} xmin age`);
      const retained = valueOf(samples, 'upkeep_postgres_replication_slot_retained_wal_bytes', { slot: slot.slot_name }) ?? -1;
      t.ok(retained > 0 && retained <= slot.retained, `${slot.slot_name} retains ${retained} bytes, at most the ${slot.retained} read after the scrape`);
    }
    t.equal(slots.length, 2);

    await holder.query('ROLLBACK');
    const after = (await app.scrape()).samples;
    t.equal(valueOf(after, 'upkeep_postgres_idle_in_transaction_sessions'), 0);
    t.equal(valueOf(after, 'upkeep_postgres_idle_in_transaction_oldest_seconds'), 0);
    t.equal(after.filter((sample) => sample.name === 'upkeep_postgres_oldest_xmin_backend_info').length, 0, 'no backend holds an xmin now');
  });

  t.test('activity: connections by state, lock waits, deadlocks, rollbacks, WAL', async (t) => {
    // Built and scraped first: its size refresh (every 5 minutes) would wait for the lock too.
    const app = await testApp(t, targetYaml(server));
    await app.scrape();
    const sessions = await Promise.all(['a', 'b', 'c', 'd'].map((name) => client(server, `session-${name}`)));
    t.teardown(() => Promise.all(sessions.map((session) => session.end().catch(() => undefined))));
    const [a, b, c, d] = sessions as [pg.Client, pg.Client, pg.Client, pg.Client];
    await a.query('BEGIN');
    await a.query('LOCK TABLE t_old IN ACCESS EXCLUSIVE MODE');
    await c.query('BEGIN');
    await c.query('SELECT 1/0').catch(() => undefined);
    await b.query('BEGIN');
    const waiting = b.query('LOCK TABLE t_old IN ACCESS SHARE MODE');
    await waitFor('lock wait', async () => {
      const [row] = await server.query<{ waiting: number }>('SELECT count(*)::int AS waiting FROM pg_locks WHERE NOT granted');
      if (row?.waiting !== 1) throw new Error('not waiting yet');
    });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const [wait] = await server.query<{ seconds: number }>('SELECT extract(epoch FROM now() - waitstart)::float8 AS seconds FROM pg_locks WHERE NOT granted');

    const { samples } = await app.scrape();
    const observer = await client(server, 'observer', 'postgres');
    t.teardown(() => observer.end());
    const { rows } = await observer.query<{ state: string; count: number }>(
      "SELECT coalesce(state, 'unknown') AS state, count(*)::int AS count FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() GROUP BY 1");
    const connections = byLabels(samples, 'upkeep_postgres_connections', ['state']);
    t.equal(connections.get('idle in transaction'), 1, 'a, holding the lock');
    t.equal(connections.get('idle in transaction (aborted)'), 1, 'c, after its error');
    t.equal(connections.get('fastpath function call'), 0, 'known states are reported at 0');
    t.equal(connections.get('unknown'), 0, 'unknown too: a superuser sees every state, and no backend is authenticating now');
    const total = (values: Iterable<number>) => [...values].reduce((sum, value) => sum + value, 0);
    t.equal(total(connections.values()), total(rows.map((row) => row.count)), 'every client backend (the observer opened after the scrape aside)');
    t.ok((connections.get('active') ?? 0) >= 2, 'b waiting for its lock, and the scrape itself');
    const [max] = await server.query<{ value: string }>("SELECT current_setting('max_connections') AS value");
    t.equal(valueOf(samples, 'upkeep_postgres_max_connections'), Number(max?.value));
    t.equal(valueOf(samples, 'upkeep_postgres_lock_waits'), 1);
    const oldestWait = valueOf(samples, 'upkeep_postgres_oldest_lock_wait_seconds') ?? 0;
    t.ok(wait && oldestWait >= wait.seconds && wait.seconds >= 1, `waiting ${oldestWait}s, at least the ${wait?.seconds}s measured before`);
    t.equal(valueOf(samples, 'upkeep_postgres_autovacuum_workers'), 0, 'autovacuum is off');
    const [workers] = await server.query<{ value: string }>("SELECT current_setting('autovacuum_max_workers') AS value");
    t.equal(valueOf(samples, 'upkeep_postgres_autovacuum_max_workers'), Number(workers?.value));
    await a.query('ROLLBACK');
    await waiting;
    await b.query('ROLLBACK');
    await c.query('ROLLBACK');

    // A real deadlock: b and d each hold one table and wait for the other's.
    await b.query('BEGIN');
    await b.query('LOCK TABLE t_mid');
    await d.query('BEGIN');
    await d.query('LOCK TABLE t_new');
    const crossed = await Promise.allSettled([b.query('LOCK TABLE t_new'), d.query('LOCK TABLE t_mid')]);
    t.equal(crossed.filter((outcome) => outcome.status === 'rejected').length, 1, 'PostgreSQL broke the deadlock');
    await b.query('ROLLBACK');
    await d.query('ROLLBACK');
    const counters = await scrapeUntil(app, 'deadlock and rollback counters equal pg_stat_database', async (current) => {
      const truth = await server.query<{ datname: string; deadlocks: number; rollbacks: number }>('SELECT datname, deadlocks::float8 AS deadlocks, xact_rollback::float8 AS rollbacks FROM pg_stat_database WHERE datname IS NOT NULL');
      for (const row of truth) {
        const deadlocks = valueOf(current, 'upkeep_postgres_deadlocks_total', { database: row.datname });
        const rollbacks = valueOf(current, 'upkeep_postgres_rollbacks_total', { database: row.datname });
        if (deadlocks !== row.deadlocks || rollbacks !== row.rollbacks) return `${row.datname}: ${deadlocks}/${rollbacks} vs ${row.deadlocks}/${row.rollbacks}`;
      }
      if (truth.find((row) => row.datname === 'app')?.deadlocks !== 1) return 'the deadlock is not counted yet';
      return null;
    });
    t.equal(valueOf(counters, 'upkeep_postgres_deadlocks_total', { database: 'app' }), 1, 'one deadlock in app');
    t.ok((valueOf(counters, 'upkeep_postgres_rollbacks_total', { database: 'app' }) ?? 0) >= 4, 'the rollbacks of a, b, c, b and d');

    const [before] = await server.query<{ bytes: number }>("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8 AS bytes");
    const wal = valueOf((await app.scrape()).samples, 'upkeep_postgres_wal_bytes_total') ?? 0;
    const [after] = await server.query<{ bytes: number }>("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8 AS bytes");
    t.ok(before && after && wal >= before.bytes && wal <= after.bytes, `WAL position ${wal} between ${before?.bytes} and ${after?.bytes}`);
    t.equal(valueOf((await app.scrape()).samples, 'upkeep_postgres_in_recovery'), 0, 'a primary');
  });

  t.test('least privilege: pg_monitor sees the other roles\' sessions, locks and slots', async (t) => {
    await server.query('CREATE ROLE server_monitor LOGIN; GRANT pg_monitor TO server_monitor');
    await server.query("SELECT pg_create_physical_replication_slot('monitored', true)");
    t.teardown(() => server.query("SELECT pg_drop_replication_slot('monitored')"));
    const holder = await client(server, 'other-role-app');
    t.teardown(() => holder.end());
    await holder.query('BEGIN');
    await holder.query('SELECT txid_current()');
    const app = await testApp(t, targetYaml(server).replace('postgres@', 'server_monitor@'));
    await app.scrape();
    const { samples } = await app.scrape();
    t.equal(app.logs.filter((entry) => entry.msg === 'postgres server reading failed; its series are skipped').length, 0, 'every reading works');
    t.equal(valueOf(samples, 'upkeep_postgres_idle_in_transaction_sessions'), 1);
    t.match(samples.find((sample) => sample.name === 'upkeep_postgres_oldest_xmin_backend_info')?.labels, { user: 'postgres', application_name: 'other-role-app', state: 'idle in transaction' });
    t.equal(valueOf(samples, 'upkeep_postgres_replication_slot_active', { slot: 'monitored' }), 0);
    t.ok((valueOf(samples, 'upkeep_postgres_replication_slot_retained_wal_bytes', { slot: 'monitored' }) ?? 0) > 0);
    t.ok((valueOf(samples, 'upkeep_postgres_wal_bytes_total') ?? 0) > 0);
    t.ok((valueOf(samples, 'upkeep_postgres_xid_age', { database: 'template0' }) ?? 0) > 0);
    await holder.query('ROLLBACK');
  });

  t.test('a reading that fails costs only its own series, logged once, and its recovery', async (t) => {
    const app = await testApp(t, targetYaml(server).replace('postgres@', 'server_plain@'));
    await server.query('CREATE ROLE server_plain LOGIN');
    // Without pg_monitor pg_stat_activity hides other roles' states but works; revoke one function to make one reading fail.
    await server.query('REVOKE EXECUTE ON FUNCTION pg_current_wal_lsn() FROM PUBLIC');
    t.teardown(() => server.query('GRANT EXECUTE ON FUNCTION pg_current_wal_lsn() TO PUBLIC'));
    await app.scrape();
    const { samples } = await app.scrape();
    t.equal(valueOf(samples, 'upkeep_postgres_up'), 1, 'the target stays up');
    t.equal(valueOf(samples, 'upkeep_postgres_in_recovery'), undefined, 'replication series are skipped');
    t.equal(valueOf(samples, 'upkeep_postgres_idle_in_transaction_sessions'), undefined, 'and the horizon\'s (its slot query needs the function too)');
    t.ok(valueOf(samples, 'upkeep_postgres_xid_age', { database: 'app' }), 'the other readings are there');
    t.ok(valueOf(samples, 'upkeep_postgres_max_connections'));
    const failures = app.logs.filter((entry) => entry.msg === 'postgres server reading failed; its series are skipped');
    t.same(failures.map(({ target, reading, err }) => ({ target, reading, err })), ['horizon', 'replication'].map((reading) => ({ target: 'main', reading, err: 'permission denied for function pg_current_wal_lsn' })), 'logged once each');
    t.ok(failures.every((entry) => entry.level === 40), 'as warnings');
    await server.query('GRANT EXECUTE ON FUNCTION pg_current_wal_lsn() TO PUBLIC');
    t.equal(valueOf((await app.scrape()).samples, 'upkeep_postgres_in_recovery'), 0);
    t.same(app.logs.filter((entry) => entry.msg === 'postgres server reading recovered').map((entry) => entry.reading), ['horizon', 'replication']);
  });
});
