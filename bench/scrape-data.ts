import type { PostgresServer } from '../src/demo/servers/postgres.js';
import type { RedisServer } from '../src/demo/servers/redis.js';
import { waitFor } from '../src/demo/servers/ports.js';

/**
 * Creates `tables` tables in a new database, each with a primary key, 20 rows and 1 to 10 of them
 * deleted (dead tuples). Commits every 200 tables so the lock table never fills.
 */
export async function createTables(server: PostgresServer, database: string, tables: number): Promise<void> {
  await server.query(`CREATE DATABASE ${database}`);
  await server.query(`DO $$
  DECLARE name text;
  BEGIN
    FOR i IN 1..${tables} LOOP
      name := 'table_' || i;
      EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY, payload text)', name);
      EXECUTE format('INSERT INTO %I SELECT g, md5(g::text) FROM generate_series(1, 20) g', name);
      EXECUTE format('DELETE FROM %I WHERE id <= %s', name, 1 + i % 10);
      IF i % 200 = 0 THEN COMMIT; END IF;
    END LOOP;
  END $$`, [], database);
  // Statistics reach pg_stat_user_tables when the writing backend has flushed them.
  await waitFor(`${database} statistics`, async () => {
    const [row] = await server.query<{ tables: string }>('SELECT count(*) AS tables FROM pg_stat_user_tables WHERE n_dead_tup > 0', [], database);
    if (Number(row?.tables) !== tables) throw new Error(`${row?.tables} of ${tables} tables show dead tuples`);
  }, 60_000, 200);
}

/** Loads `matching` keys named celery-task-meta-… and `others` other keys with DEBUG POPULATE (needs --enable-debug-command). */
export async function loadRedis(server: RedisServer, matching: number, others: number): Promise<void> {
  const client = server.client();
  try {
    // DEBUG POPULATE names keys PREFIX:N, so the prefix itself must match the pattern.
    await client.call('DEBUG', 'POPULATE', String(matching), 'celery-task-meta-x', '64');
    await client.call('DEBUG', 'POPULATE', String(others), 'session', '64');
    const keys = await client.dbsize();
    if (keys !== matching + others) throw new Error(`expected ${matching + others} keys, found ${keys}`);
  } finally {
    client.disconnect();
  }
}
