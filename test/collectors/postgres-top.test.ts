import pg from 'pg';
import t from 'tap';
import { readSizes, readTableStats } from '../../src/collectors/postgres-queries.js';
import { tableSelector, type TableFilter, type TableStats } from '../../src/collectors/postgres-tables.js';
import { ArrayRow, type ArrayQuery, type Queryable } from '../../src/collectors/postgres-top.js';
import { oldestTables, readTableXidAges, type TableXidAge } from '../../src/collectors/postgres-wraparound.js';
import { startPostgres, type PostgresServer } from '../fixtures/postgres.js';
import { waitFor } from '../fixtures/ports.js';

// tables.limit chosen in SQL: against a real catalog bigger than the limit, the rows read are the
// same top N the JavaScript selectors (the selection before the change) keep from every row, and
// no more rows than the limit come back when the patterns admit the tables.

const TABLES = 300;
// Dead tuples i % 7: many ties, so the name tie-break decides most of the top N.
const dead = (i: number): number => i % 7;

/** A real pool that counts the rows its queries return. */
function counting(pool: pg.Pool): Queryable & { rows: number } {
  const counter = {
    rows: 0,
    async query(query: ArrayQuery) {
      const result = await pool.query(query);
      counter.rows += result.rows.length;
      return result;
    },
  };
  return counter;
}

/** Every table's dead tuples, as the collector read them before: the input of tableSelector. */
async function allStats(server: PostgresServer): Promise<TableStats[]> {
  const rows = await server.query<{ schema: string; table: string; dead: number }>('SELECT schemaname AS schema, relname AS "table", n_dead_tup::float8 AS dead FROM pg_stat_user_tables', [], 'app');
  return rows.map((row) => ({
    database: 'app', schema: row.schema, table: row.table, deadTuples: row.dead, liveTuples: 0, lastVacuumSeconds: null, lastAnalyzeSeconds: null,
    lastAutovacuumSeconds: null, lastAutoanalyzeSeconds: null, vacuumCount: 0, autovacuumCount: 0, analyzeCount: 0, autoanalyzeCount: 0, modsSinceAnalyze: 0,
  }));
}

/** Every table's xid age, with the collector's former query: the input of oldestTables. */
async function allAges(server: PostgresServer): Promise<TableXidAge[]> {
  const rows = await server.query<{ schema: string; table: string; age: number }>(`
    SELECT n.nspname AS schema, c.relname AS "table", greatest(age(c.relfrozenxid), age(t.relfrozenxid))::float8 AS age
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
    WHERE c.relkind IN ('r', 'm') AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'`, [], 'app');
  return rows.map((row) => ({ database: 'app', schema: row.schema, table: row.table, xidAge: row.age }));
}

const names = (tables: readonly { schema: string; table: string }[]) => tables.map((table) => `${table.schema}.${table.table}`);

t.test('top tables by dead tuples and by xid age, selected in SQL', async (t) => {
  const server = await startPostgres({ settings: { autovacuum: 'off' } });
  t.teardown(() => server.destroy());
  // An ICU database whose default collation sorts "a" before "B": the tie-break must still be the
  // code-point order the JavaScript selectors use ("B" before "a").
  await server.query("CREATE DATABASE app TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en' LOCALE 'C'");
  await server.query(`DO $$ BEGIN
    FOR i IN 0..${TABLES - 1} LOOP
      EXECUTE format('CREATE TABLE %I (id int)', 't_' || lpad(i::text, 3, '0'));
      EXECUTE format('INSERT INTO %I SELECT generate_series(1, 10)', 't_' || lpad(i::text, 3, '0'));
      EXECUTE format('DELETE FROM %I WHERE id <= %s', 't_' || lpad(i::text, 3, '0'), i % 7);
      IF i % 50 = 0 THEN COMMIT; PERFORM txid_current(); COMMIT; END IF;
    END LOOP;
  END $$`, [], 'app');
  await server.query(`CREATE SCHEMA "B"; CREATE SCHEMA a;
    CREATE TABLE "B".x (id int); CREATE TABLE a.x (id int); CREATE TABLE "B"."Y" (v text); CREATE TABLE a.y (v text);
    INSERT INTO "B".x SELECT generate_series(1, 6); DELETE FROM "B".x; INSERT INTO a.x SELECT generate_series(1, 6); DELETE FROM a.x;
    INSERT INTO "B"."Y" VALUES ('v'); DELETE FROM "B"."Y"; INSERT INTO a.y VALUES ('v'); DELETE FROM a.y`, [], 'app');
  const total = TABLES + 4;
  await waitFor('table statistics', async () => {
    const stats = await allStats(server);
    const wrong = stats.filter((table) => table.deadTuples !== (table.table.startsWith('t_') ? dead(Number(table.table.slice(2))) : table.table === 'x' ? 6 : 1));
    if (stats.length !== total || wrong.length > 0) throw new Error(`${stats.length} tables, ${wrong.length} not flushed yet`);
  });
  const pool = new pg.Pool({ connectionString: server.url('app'), max: 1 });
  t.teardown(() => pool.end());
  const stats = await allStats(server);
  const ages = await allAges(server);
  const base = { include: [], exclude: [], minDeadTuples: 0, limit: 25 };

  t.test('without patterns: the same top N, and only N rows read', async (t) => {
    for (const limit of [1, 25, 100]) {
      const counter = counting(pool);
      const filter = { ...base, limit };
      t.same(names(await readTableStats(counter, 'app', filter)), names(tableSelector(filter)(stats)), `dead tuples, limit ${limit}`);
      t.equal(counter.rows, limit, `dead tuples, limit ${limit}: ${limit} rows read of ${total}`);
      counter.rows = 0;
      t.same(names(await readTableXidAges(counter, 'app', filter)), names(oldestTables(filter)(ages)), `xid age, limit ${limit}`);
      t.equal(counter.rows, limit, `xid age, limit ${limit}: ${limit} rows read of ${total}`);
    }
    const top = await readTableStats(pool, 'app', { ...base, limit: 8 });
    t.same(names(top).slice(0, 4), ['B.x', 'a.x', 'public.t_006', 'public.t_013'], 'ties in code-point order, not the database collation');
  });

  t.test('patterns and minDeadTuples: the same top N, read in pages until found', async (t) => {
    // With the rows read: whole pages of `limit` rows until `limit` tables are admitted.
    const filters: [TableFilter, number][] = [
      [{ ...base, minDeadTuples: 5 }, 25],
      [{ ...base, include: ['^public\\.t_0'], limit: 30 }, 90],
      // Admits about one table in five: the first page is thinned out, so a second follows.
      [{ ...base, exclude: ['[01]$'], limit: 40 }, 80],
      // Fewer tables admitted than the limit: every page is read, as every row was before.
      [{ ...base, include: ['^a\\.', '^B\\.'], limit: 10 }, total],
      [{ ...base, minDeadTuples: 6, exclude: ['^public\\.t_1'] }, 44],
    ];
    for (const [filter, rows] of filters) {
      const counter = counting(pool);
      const expected = tableSelector(filter)(stats);
      t.same(names(await readTableStats(counter, 'app', filter)), names(expected), `dead tuples, ${JSON.stringify(filter)}`);
      t.equal(counter.rows, rows, `dead tuples: ${rows} rows read of ${total}`);
      t.same(names(await readTableXidAges(pool, 'app', filter)), names(oldestTables(filter)(ages)), `xid age, ${JSON.stringify(filter)}`);
    }
  });

  t.test('sizes are measured for the selected tables only', async (t) => {
    const top = await readTableStats(pool, 'app', base);
    const sizes = await readSizes(pool, 60, top);
    t.equal(sizes.tableBytes.size, base.limit);
    const truth = await server.query<{ schema: string; table: string; bytes: number }>('SELECT schemaname AS schema, relname AS "table", pg_table_size(relid)::float8 AS bytes FROM pg_stat_user_tables', [], 'app');
    const expected = new Map(truth.filter((row) => top.some((table) => table.schema === row.schema && table.table === row.table)).map((row) => [`${row.schema}\u0000${row.table}`, row.bytes]));
    t.same(sizes.tableBytes, expected, 'equal pg_table_size');
  });
});

t.test('array rows are checked column by column, and a wrong row names the column', async (t) => {
  const [row] = ArrayRow.all([['public', 1.5, null]], ['schema', 'dead', 'age']);
  t.equal(row?.text(0), 'public');
  t.equal(row?.number(1), 1.5);
  t.equal(row?.numberOrNull(2), null);
  t.throws(() => row?.number(2), { message: 'column age: expected a number, got null' });
  t.throws(() => row?.text(1), { message: 'column dead: expected text, got number' });
  t.throws(() => row?.numberOrNull(0), { message: 'column schema: expected a number, got string' });
  t.throws(() => ArrayRow.all([['public']], ['schema', 'dead']), { message: 'expected rows of 2 columns (schema, dead)' });
  t.throws(() => ArrayRow.all([{ schema: 'public' }], ['schema']), { message: 'expected rows of 1 columns (schema)' });
});
