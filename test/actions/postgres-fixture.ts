import pg from 'pg';
import { startPostgres, type PostgresServer } from '../fixtures/postgres.js';
import { waitFor } from '../fixtures/ports.js';

/** A throwaway server with autovacuum off (so only upkeep vacuums) and every statement logged. */
export async function startTestPostgres(t: { teardown(fn: () => unknown): void }, settings: Record<string, string> = {}): Promise<PostgresServer> {
  const server = await startPostgres({ settings: { autovacuum: 'off', log_statement: "'all'", ...settings } });
  t.teardown(() => server.destroy());
  return server;
}

/** Creates `table` in `database` with `rows` rows and deletes `dead` of them, then waits until the stats show the dead tuples. */
export async function tableWithDeadTuples(server: PostgresServer, database: string, table: string, rows = 1000, dead = 400): Promise<void> {
  await server.query(`create table ${table} (id int primary key, payload text)`, [], database);
  await server.query(`insert into ${table} select g, repeat('x', 50) from generate_series(1, ${rows}) g`, [], database);
  await server.query(`delete from ${table} where id <= ${dead}`, [], database);
  await waitFor(`dead tuples in ${table}`, async () => {
    const stats = await tableStats(server, database, table);
    if (stats.deadTuples < dead) throw new Error(`only ${stats.deadTuples} dead tuples so far`);
  });
}

/**
 * A session of its own that holds `table` in ACCESS EXCLUSIVE mode (its transaction left open), so
 * whatever needs the table waits for as long as the test likes: a long VACUUM, a pg_dump held at
 * its start. The returned function lets go (once; the teardown does it otherwise).
 */
export async function holdTable(t: { teardown(fn: () => unknown): void }, server: PostgresServer, database: string, table: string): Promise<() => Promise<void>> {
  const locker = new pg.Client({ connectionString: server.url(database), application_name: 'test-locker' });
  await locker.connect();
  await locker.query('begin');
  await locker.query(`lock table ${table} in access exclusive mode`);
  let held = true;
  const release = async () => {
    if (!held) return;
    held = false;
    await locker.query('commit');
    await locker.end();
  };
  t.teardown(release);
  return release;
}

export async function tableStats(server: PostgresServer, database: string, table: string): Promise<{ deadTuples: number; vacuumCount: number; analyzeCount: number }> {
  const [row] = await server.query<{ dead: string; vacuums: string; analyzes: string }>(
    'select n_dead_tup as dead, vacuum_count as vacuums, analyze_count as analyzes from pg_stat_user_tables where relname = $1', [table], database);
  if (!row) throw new Error(`no stats for ${table}`);
  return { deadTuples: Number(row.dead), vacuumCount: Number(row.vacuums), analyzeCount: Number(row.analyzes) };
}

/**
 * Creates `database` with a table of about 2,000 heap blocks, half its rows dead, and makes every
 * VACUUM there slow (cost-based delay for the database's new sessions): long enough that its
 * progress can be read while it runs.
 */
export async function slowVacuumTable(server: PostgresServer, database: string, table: string): Promise<void> {
  await server.query(`create database ${database}`);
  await server.query(`alter database ${database} set vacuum_cost_delay = '20ms'`);
  await server.query(`alter database ${database} set vacuum_cost_limit = 100`);
  await tableWithDeadTuples(server, database, table, 200_000, 100_000);
}

/**
 * A session of `database` idle in a transaction that has an xid (application_name report-job):
 * it holds the vacuum horizon until the test ends. Its backend's pid.
 */
export async function holdHorizon(t: { teardown(fn: () => unknown): void }, server: PostgresServer, database: string): Promise<number> {
  const holder = new pg.Client({ connectionString: server.url(database), application_name: 'report-job' });
  await holder.connect();
  t.teardown(() => holder.end());
  await holder.query('begin');
  await holder.query('select txid_current()');
  const [row] = (await holder.query<{ pid: number }>('select pg_backend_pid() as pid')).rows;
  if (!row) throw new Error('no backend pid');
  return row.pid;
}
