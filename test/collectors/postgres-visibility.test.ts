import pg from 'pg';
import t from 'tap';
import { z } from 'zod';
import { hiddenFamilies } from '../../src/collectors/postgres-visibility.js';
import { slowVacuumTable, startTestPostgres } from '../actions/postgres-fixture.js';
import { queryOnce } from '../fixtures/postgres.js';
import { waitFor } from '../fixtures/ports.js';
import { testApp, valueOf, type Sample } from './helpers.js';

// One server scraped as two roles, as docs/security.md recommends declaring it (a pg_monitor role,
// a maintenance role...): a role without pg_read_all_stats does not see other roles' sessions'
// state, backend_type or xact_start, and used to export plausible zeros for them.

const HIDDEN = [
  'upkeep_postgres_connections',
  'upkeep_postgres_autovacuum_workers',
  'upkeep_postgres_oldest_xmin_backend_info',
  'upkeep_postgres_idle_in_transaction_sessions',
  'upkeep_postgres_idle_in_transaction_oldest_seconds',
  'upkeep_postgres_oldest_transaction_age_seconds',
  'upkeep_postgres_statement_seconds_total',
  'upkeep_postgres_statement_calls_total',
];

const holderState = z.object({ xid_age: z.number(), idle: z.number(), open: z.number() });

t.test('a role without pg_read_all_stats: what it cannot see is absent, not 0; the superuser target reads it right; another role\'s VACUUM is skipped without a warning', async (t) => {
  const server = await startTestPostgres(t, { shared_preload_libraries: 'pg_stat_statements' });
  await slowVacuumTable(server, 'app', 'orders');
  await server.query('CREATE EXTENSION pg_stat_statements', [], 'app');
  await server.query('CREATE ROLE watcher LOGIN');
  await server.query('CREATE ROLE app_user LOGIN');
  const as = (role: string) => server.url('app').replace('//postgres@', `//${role}@`);

  // Another role's session idle in a transaction that holds an xid, a few xids ago.
  const holder = new pg.Client({ connectionString: as('app_user'), application_name: 'report-job' });
  await holder.connect();
  t.teardown(() => holder.end());
  await holder.query('BEGIN');
  await holder.query('SELECT txid_current()');
  const holderPid = z.number().parse((await holder.query('SELECT pg_backend_pid() AS pid')).rows[0]?.pid);
  for (let i = 0; i < 5; i += 1) await server.query('SELECT txid_current()');
  const holderNow = async () => {
    const [row] = await server.query(`SELECT age(backend_xid)::float8 AS xid_age, extract(epoch FROM now() - state_change)::float8 AS idle,
      extract(epoch FROM now() - xact_start)::float8 AS open FROM pg_stat_activity WHERE pid = $1`, [holderPid]);
    return holderState.parse(row);
  };

  const app = await testApp(t, [
    'targets:',
    '  postgres:',
    `    - { name: as_superuser, url: "${server.url('app')}", databases: [app], statements: { enabled: true } }`,
    `    - { name: as_watcher, url: "${as('watcher')}", databases: [app], statements: { enabled: true } }`,
    '',
  ].join('\n'));
  const scrape = async (): Promise<Sample[]> => {
    const { status, samples } = await app.scrape();
    if (status !== 200) throw new Error(`/metrics answered ${status}`);
    return samples;
  };
  const of = (samples: Sample[], target: string, name: string) => samples.filter((sample) => sample.name === name && sample.labels.target === target);

  t.test('sessions: the superuser target has the numbers, the watcher target has no series', async (t) => {
    const before = await holderNow();
    const samples = await scrape();
    const after = await holderNow();
    t.equal(after.xid_age, before.xid_age, 'no xid was assigned during the scrape');

    const superuser = (name: string, labels: Record<string, string> = {}) => valueOf(samples, name, { target: 'as_superuser', ...labels });
    t.equal(superuser('upkeep_postgres_oldest_xmin_age', { holder: 'backend' }), before.xid_age, `holder backend: age(backend_xid) of the idle session (${before.xid_age})`);
    t.ok(before.xid_age >= 6, 'an age past the xids taken after it');
    t.match(of(samples, 'as_superuser', 'upkeep_postgres_oldest_xmin_backend_info'), [{ labels: { pid: String(holderPid), database: 'app', user: 'app_user', state: 'idle in transaction', application_name: 'report-job' }, value: 1 }]);
    t.equal(superuser('upkeep_postgres_idle_in_transaction_sessions'), 1);
    const idle = superuser('upkeep_postgres_idle_in_transaction_oldest_seconds') ?? -1;
    t.ok(idle >= before.idle && idle <= after.idle, `idle ${idle}s, between ${before.idle}s and ${after.idle}s`);
    const open = superuser('upkeep_postgres_oldest_transaction_age_seconds', { database: 'app' }) ?? -1;
    t.ok(open >= before.open && open <= after.open, `oldest transaction ${open}s, between ${before.open}s and ${after.open}s`);
    t.ok((superuser('upkeep_postgres_connections', { state: 'idle in transaction' }) ?? 0) >= 1, 'the idle session counted among the connections');
    t.equal(of(samples, 'as_superuser', 'upkeep_postgres_connections').length, 7, 'every state');
    t.equal(superuser('upkeep_postgres_autovacuum_workers'), 0, 'autovacuum is off');
    t.ok(of(samples, 'as_superuser', 'upkeep_postgres_statement_calls_total').length > 0, 'statements');

    for (const name of HIDDEN) t.same(of(samples, 'as_watcher', name), [], `as_watcher: no ${name} (it read 0, or a part of the truth)`);
    t.equal(valueOf(samples, 'upkeep_postgres_oldest_xmin_age', { target: 'as_watcher', holder: 'backend' }), undefined, 'as_watcher: no backend holder');
    const watcher = (name: string, labels: Record<string, string> = {}) => valueOf(samples, name, { target: 'as_watcher', ...labels });
    t.equal(watcher('upkeep_postgres_up'), 1, 'as_watcher is up');
    for (const holder of ['replication_slot', 'prepared_xact', 'standby']) t.equal(watcher('upkeep_postgres_oldest_xmin_age', { holder }), 0, `as_watcher: holder ${holder}, which every role sees`);
    t.equal(watcher('upkeep_postgres_lock_waits'), 0, 'lock waits: pg_locks shows every role\'s');
    t.equal(watcher('upkeep_postgres_max_connections'), superuser('upkeep_postgres_max_connections'));
    t.equal(watcher('upkeep_postgres_autovacuum_max_workers'), superuser('upkeep_postgres_autovacuum_max_workers'));
    t.ok(watcher('upkeep_postgres_xid_age', { database: 'app' }) !== undefined, 'wraparound as for any role');
    t.ok(watcher('upkeep_postgres_dead_tuples', { database: 'app', schema: 'public', table: 'orders' }) !== undefined, 'table statistics as for any role');
  });

  t.test('lock waits of other roles are seen without the privilege', async (t) => {
    const waiter = new pg.Client({ connectionString: as('app_user'), application_name: 'waiter' });
    await waiter.connect();
    t.teardown(() => waiter.end());
    await server.query('GRANT SELECT ON orders TO app_user', [], 'app');
    const locker = new pg.Client({ connectionString: server.url('app') });
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK orders IN ACCESS EXCLUSIVE MODE');
    const waiting = waiter.query('SELECT count(*) FROM orders');
    try {
      const samples = await waitFor('the lock wait', async () => {
        const samples = await scrape();
        if (valueOf(samples, 'upkeep_postgres_lock_waits', { target: 'as_superuser' }) !== 1) throw new Error('not waiting yet');
        return samples;
      }, 30_000, 100);
      t.equal(valueOf(samples, 'upkeep_postgres_lock_waits', { target: 'as_watcher' }), 1);
      t.ok((valueOf(samples, 'upkeep_postgres_oldest_lock_wait_seconds', { target: 'as_watcher' }) ?? 0) > 0);
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
      await waiting;
    }
  });

  t.test('another role\'s VACUUM running: the watcher skips it, no warning; the superuser sees it', async (t) => {
    const vacuuming = new pg.Client({ connectionString: server.url('app') });
    await vacuuming.connect();
    const vacuumPid = z.number().parse((await vacuuming.query('SELECT pg_backend_pid() AS pid')).rows[0]?.pid);
    const vacuum = vacuuming.query('VACUUM orders').catch(() => undefined);
    t.teardown(async () => {
      await server.query('SELECT pg_cancel_backend($1)', [vacuumPid]);
      await vacuum;
      await vacuuming.end();
    });
    const samples = await waitFor('the vacuum seen by the superuser target', async () => {
      const samples = await scrape();
      if (of(samples, 'as_superuser', 'upkeep_postgres_vacuum_running_info').length === 0) throw new Error('not seen yet');
      return samples;
    }, 60_000, 50);
    const [shown] = await server.query('SELECT count(*)::int AS rows FROM pg_stat_progress_vacuum');
    t.match(of(samples, 'as_superuser', 'upkeep_postgres_vacuum_running_info'), [{ labels: { pid: String(vacuumPid), kind: 'manual' } }]);
    t.same(of(samples, 'as_watcher', 'upkeep_postgres_vacuum_running_info'), [], 'the watcher has no vacuum series: it sees none of it');
    const [blind] = await queryOnce(as('watcher'), 'SELECT count(*)::int AS rows, count(relid)::int AS relids FROM pg_stat_progress_vacuum');
    t.same(blind, { rows: shown?.rows, relids: 0 }, 'the watcher sees the vacuum\'s row, every column NULL');
    // A few more scrapes while it runs: the reading neither fails nor warns.
    for (let i = 0; i < 3; i += 1) await scrape();
    t.same(app.logs.filter((entry) => entry.level !== 30 && entry.level !== 20), [], 'nothing logged above info');
    t.same(app.logs.filter((entry) => entry.reading === 'progress'), [], 'no progress failure');
  });

  t.test('logged once, for the watcher target only, naming what it leaves out', async (t) => {
    await scrape();
    const lines = app.logs.filter((entry) => typeof entry.msg === 'string' && entry.msg.includes('pg_read_all_stats'));
    t.equal(lines.length, 1, 'one line for all those scrapes');
    t.match(lines[0], { level: 30, target: 'as_watcher', role: 'watcher', msg: /^role "watcher" lacks pg_read_all_stats .*upkeep_postgres_connections.*upkeep_postgres_statement_calls_total are not exported for target "as_watcher"/ });
    const named = [
      'upkeep_postgres_connections',
      'upkeep_postgres_autovacuum_workers',
      'upkeep_postgres_oldest_xmin_age{holder="backend"}',
      'upkeep_postgres_oldest_xmin_backend_info',
      'upkeep_postgres_idle_in_transaction_sessions',
      'upkeep_postgres_idle_in_transaction_oldest_seconds',
      'upkeep_postgres_oldest_transaction_age_seconds',
      'upkeep_postgres_standby_streaming',
      'upkeep_postgres_replication_lag_seconds',
      'upkeep_postgres_replication_lag_bytes',
      'upkeep_postgres_replication_info',
      'upkeep_postgres_statement_seconds_total',
      'upkeep_postgres_statement_calls_total',
    ];
    t.same(lines[0]?.families, named);
    t.same(hiddenFamilies(false), named.slice(0, -2), 'without statements.enabled, the statement families are not named');
  });

  t.test('granted pg_monitor while upkeep runs: the series come back, and the log says so once', async (t) => {
    await server.query('GRANT pg_monitor TO watcher');
    const samples = await scrape();
    t.equal(valueOf(samples, 'upkeep_postgres_idle_in_transaction_sessions', { target: 'as_watcher' }), 1);
    t.equal(valueOf(samples, 'upkeep_postgres_oldest_xmin_age', { target: 'as_watcher', holder: 'backend' }), valueOf(samples, 'upkeep_postgres_oldest_xmin_age', { target: 'as_superuser', holder: 'backend' }));
    t.equal(of(samples, 'as_watcher', 'upkeep_postgres_connections').length, 7);
    await scrape();
    t.equal(app.logs.filter((entry) => typeof entry.msg === 'string' && entry.msg.includes('now has pg_read_all_stats')).length, 1);
  });
});
