import pg from 'pg';
import t from 'tap';
import { readSizes, readTableStats, TABLE_STAT_COLUMNS } from '../../src/collectors/postgres-queries.js';
import { selectTop, TableColumns, type Selection } from '../../src/collectors/postgres-table-columns.js';
import { selectTables, type TableFilter } from '../../src/collectors/postgres-tables.js';
import { poolRows, readTop, type ArrayQuery, type RowSink, type RowStream } from '../../src/collectors/postgres-top.js';
import { socketFor } from '../../src/systems/postgres/client.js';
import { TableRows } from '../../src/collectors/postgres-table-rows.js';
import { readTableXidAges } from '../../src/collectors/postgres-wraparound.js';
import { named } from '../../src/systems/postgres/prepared.js';
import { startPostgres, type PostgresServer } from '../fixtures/postgres.js';
import { waitFor } from '../fixtures/ports.js';

// tables.limit chosen in SQL: against a real catalog bigger than the limit, the rows read are the
// same top N the JavaScript selectors (the selection before the change) keep from every row, and
// no more rows than the limit come back when the patterns admit the tables.

const TABLES = 300;
// Dead tuples i % 7: many ties, so the name tie-break decides most of the top N.
const dead = (i: number): number => i % 7;

/** A real pool's rows as they arrive, counted, and how they came (parsed by pg, or as DataRow messages). */
function counting(pool: pg.Pool): RowStream & { rows: number; messages: number } {
  const stream = poolRows(pool);
  const counter = {
    rows: 0,
    messages: 0,
    each: (query: ArrayQuery, sink: RowSink) => stream.each(query, {
      row(values) {
        counter.rows += 1;
        sink.row(values);
      },
      message(bytes, start, end) {
        counter.rows += 1;
        counter.messages += 1;
        sink.message(bytes, start, end);
      },
    }),
  };
  return counter;
}

/** The rows of a query on a pool whose connections pg reads itself (no MessageSocket), as pg parsed them. */
function parsedRows(values: unknown[]): RowSink {
  return { row: (row) => values.push(row), message: () => { throw new Error('a DataRow message on a plain socket'); } };
}

/** Every table's dead tuples, as the collector read them before issue 13 chose the top N in SQL: the input of the selection. */
async function allStats(server: PostgresServer): Promise<TableColumns> {
  const rows = await server.query<{ schema: string; table: string; dead: number }>('SELECT schemaname AS schema, relname AS "table", n_dead_tup::float8 AS dead FROM pg_stat_user_tables', [], 'app');
  const reading = new TableColumns('app', TABLE_STAT_COLUMNS);
  for (const row of rows) reading.push([row.schema, row.table, row.dead, 0, null, null, null, null, 0, 0, 0, 0, 0]);
  return reading;
}

/** Every table's xid age, with the collector's former query: the input of the selection. */
async function allAges(server: PostgresServer): Promise<TableColumns> {
  const rows = await server.query<{ schema: string; table: string; age: number }>(`
    SELECT n.nspname AS schema, c.relname AS "table", greatest(age(c.relfrozenxid), age(t.relfrozenxid))::float8 AS age
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
    WHERE c.relkind IN ('r', 'm') AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'`, [], 'app');
  const reading = new TableColumns('app', [{ name: 'xid_age', nullable: false }]);
  for (const row of rows) reading.push([row.schema, row.table, row.age]);
  return reading;
}

/** The tables of a reading in the order read, or of a selection in its order. */
function names(tables: TableColumns | Selection): string[] {
  return Array.from({ length: tables.length }, (_, i) => `${tables.name(i).schema}.${tables.name(i).table}`);
}

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
    const wrong = stats.names.filter(({ table }, i) => stats.value(i, 0) !== (table.startsWith('t_') ? dead(Number(table.slice(2))) : table === 'x' ? 6 : 1));
    if (stats.length !== total || wrong.length > 0) throw new Error(`${stats.length} tables, ${wrong.length} not flushed yet`);
  });
  const pool = new pg.Pool({ connectionString: server.url('app'), max: 1 });
  t.teardown(() => pool.end());
  // The collectors' pools: their rows come as DataRow messages (MessageSocket), pg parses none.
  const framed = new pg.Pool({ connectionString: server.url('app'), max: 1, stream: socketFor });
  t.teardown(() => framed.end());
  const pools = [{ how: 'parsed by pg', pool, messages: false }, { how: 'DataRow messages', pool: framed, messages: true }];
  const stats = [await allStats(server)];
  const ages = [await allAges(server)];
  const stream = poolRows(pool);
  const oldest = (filter: TableFilter) => selectTop(ages, 'xid_age', filter);
  const base = { include: [], exclude: [], minDeadTuples: 0, limit: 25 };

  t.test('without patterns: the same top N, and only N rows read', async (t) => {
    for (const { how, pool, messages } of pools) {
      for (const limit of [1, 25, 100]) {
        const counter = counting(pool);
        const filter = { ...base, limit };
        t.same(names(await readTableStats(counter, 'app', filter)), names(selectTables(stats, filter)), `${how}: dead tuples, limit ${limit}`);
        t.equal(counter.rows, limit, `dead tuples, limit ${limit}: ${limit} rows read of ${total}`);
        t.equal(counter.messages, messages ? limit : 0, `${how}: how the rows came`);
        counter.rows = 0;
        t.same(names(await readTableXidAges(counter, 'app', filter)), names(oldest(filter)), `${how}: xid age, limit ${limit}`);
        t.equal(counter.rows, limit, `xid age, limit ${limit}: ${limit} rows read of ${total}`);
      }
    }
    const top = await readTableStats(stream, 'app', { ...base, limit: 8 });
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
    for (const { how, pool } of pools) {
      for (const [filter, rows] of filters) {
        const counter = counting(pool);
        const expected = selectTables(stats, filter);
        t.same(names(await readTableStats(counter, 'app', filter)), names(expected), `${how}: dead tuples, ${JSON.stringify(filter)}`);
        t.equal(counter.rows, rows, `dead tuples: ${rows} rows read of ${total}`);
        t.same(names(await readTableXidAges(poolRows(pool), 'app', filter)), names(oldest(filter)), `${how}: xid age, ${JSON.stringify(filter)}`);
      }
    }
  });

  t.test('sizes are measured for the selected tables only', async (t) => {
    const top = await readTableStats(stream, 'app', base);
    const sizes = await readSizes(pool, 60, top.names);
    const measured = [...sizes.tableBytes].flatMap(([schema, tables]) => [...tables].map(([table, bytes]) => `${schema}.${table} ${bytes}`));
    t.equal(measured.length, base.limit);
    const truth = await server.query<{ schema: string; table: string; bytes: number }>('SELECT schemaname AS schema, relname AS "table", pg_table_size(relid)::float8 AS bytes FROM pg_stat_user_tables', [], 'app');
    const expected = truth.filter((row) => top.names.some((table) => table.schema === row.schema && table.table === row.table)).map((row) => `${row.schema}.${row.table} ${row.bytes}`);
    t.same(measured.sort(), expected.sort(), 'equal pg_table_size');
  });
});


t.test('rows are read as they arrive: a refused row fails the read, a failed query drops its connection', async (t) => {
  const server = await startPostgres();
  t.teardown(() => server.destroy());
  const pool = new pg.Pool({ connectionString: server.url(), max: 1 });
  t.teardown(() => pool.end());
  const pids = new Set<number>();
  pool.on('connect', (client) => { client.query('SELECT pg_backend_pid() AS pid').then((result) => pids.add(Number(result.rows[0].pid)), () => undefined); });
  const stream = poolRows(pool);
  const seen: unknown[] = [];
  await stream.each({ text: 'SELECT g, g::text FROM generate_series(1, $1::int) g', values: [3], rowMode: 'array' }, parsedRows(seen));
  t.same(seen, [[1, '1'], [2, '2'], [3, '3']], 'every row, in order, as arrays');
  const refused: unknown[] = [];
  await t.rejects(stream.each({ text: 'SELECT g FROM generate_series(1, 5) g', values: [], rowMode: 'array' }, {
    row(values) {
      refused.push(values);
      if (refused.length === 2) throw new Error('column g: expected text, got number');
    },
    message: () => undefined,
  }), { message: 'column g: expected text, got number' });
  t.equal(refused.length, 2, 'the rows after the refused one are skipped');
  const reading = new TableColumns('postgres', [{ name: 'n', nullable: false }]);
  const sql = named('test_not_numbers', `SELECT 'public', 't' || g, CASE WHEN g = 2 THEN 'x' ELSE '1' END::text FROM generate_series(1, 3) g
    WHERE $1::int > 0 AND $2::float8 IS NULL AND $3::text IS NULL AND $4::text IS NULL`);
  await t.rejects(readTop(stream, sql, reading, 'n', { include: [], exclude: [], limit: 10 }), { message: 'column n: expected a number, got string' });
  t.equal(reading.length, 0, 'nothing kept of a row that is not numbers');
  t.equal(pids.size, 1, 'a refused row keeps the connection');
  await t.rejects(stream.each({ text: 'SELECT 1/0', values: [], rowMode: 'array' }, parsedRows([])), /division by zero/);
  await stream.each({ text: 'SELECT 1', values: [], rowMode: 'array' }, parsedRows([]));
  t.equal(pids.size, 2, 'a failed query\'s connection is replaced');
});

t.test('read from DataRow messages, a reading holds the numbers pg would have parsed, and refuses what pg would', async (t) => {
  const server = await startPostgres();
  t.teardown(() => server.destroy());
  const plain = new pg.Pool({ connectionString: server.url(), max: 1 });
  const framed = new pg.Pool({ connectionString: server.url(), max: 1, stream: socketFor });
  t.teardown(() => Promise.all([plain.end(), framed.end()]));
  const pids = new Set<number>();
  framed.on('connect', (client) => { client.query('SELECT pg_backend_pid() AS pid').then((result) => pids.add(Number(result.rows[0].pid)), () => undefined); });
  const columns = [{ name: 'n', nullable: false }, { name: 'when', nullable: true }];
  const read = async (pool: pg.Pool, text: string, known?: TableRows): Promise<TableColumns> => {
    const reading = new TableColumns('postgres', columns, { known });
    await poolRows(pool).each({ text, values: [], rowMode: 'array' }, {
      row: (values) => reading.push(values),
      message: (bytes, start, end) => reading.pushMessage(bytes, start, end),
    });
    return reading;
  };
  const values = ['0', '-0', '1', '42.5', '9007199254740993', '1e15', '-2.5e300', '5e-324', '0.1', 'NaN', 'Infinity', '-Infinity', '1.7976931348623157e308'];
  const sql = `SELECT 'sch' || g % 3, CASE WHEN g % 2 = 0 THEN 'tâble_' ELSE 'table_' END || g, v::float8, CASE WHEN g % 2 = 0 THEN NULL ELSE extract(epoch FROM timestamptz '2026-12-01 10:00:00.123456+00' + g * interval '1.000001 s')::float8 END
    FROM unnest(ARRAY['${values.join("','")}']) WITH ORDINALITY AS u(v, g)`;
  const parsed = await read(plain, sql);
  const messages = await read(framed, sql);
  t.equal(messages.length, values.length);
  const cells = (reading: TableColumns) => Array.from({ length: reading.length }, (_, row) => [reading.name(row).schema, reading.name(row).table, reading.value(row, 0), reading.value(row, 1)]);
  t.same(cells(messages), cells(parsed), 'the same names and numbers, row by row');
  t.ok(cells(messages).every((cell, row) => Object.is(cell[2], cells(parsed)[row]![2])), '-0 and NaN too');
  t.ok(Number.isNaN(messages.value(1, 1)), 'NULL is NaN');
  const known = new TableRows('main', 'postgres');
  for (const name of messages.names.slice(0, 8)) known.row(name.schema, name.table);
  const again = await read(framed, sql, known);
  t.ok(again.names.every((name, row) => (row < 8 ? name === known.find(name.schema, name.table) : !known.find(name.schema, name.table))), 'tables exported before are their kept names, ASCII or not');
  t.same(cells(again), cells(parsed));

  const refusals: [string, string][] = [
    [`SELECT 'public', 't', NULL::float8, 1::float8`, 'column n: expected a number, got null'],
    [`SELECT 'public', 't', 'x'::text, 1::float8`, 'column n: expected a number, got text'],
    [`SELECT 'public', NULL::text, 1::float8, 1::float8`, 'column table: expected text, got null'],
    [`SELECT NULL::text, 't', 1::float8, 1::float8`, 'column schema: expected text, got null'],
    [`SELECT 'public', 't', 1::float8`, 'expected rows of 4 columns (schema, table, n, when)'],
  ];
  for (const [text, message] of refusals) {
    const reading = new TableColumns('postgres', columns);
    await t.rejects(poolRows(framed).each({ text: `${text} UNION ALL ${text.replace(/'t'/, "'u'")}`, values: [], rowMode: 'array' }, {
      row: () => t.fail('pg parsed a row on a MessageSocket'),
      message: (bytes, start, end) => reading.pushMessage(bytes, start, end),
    }), { message }, message);
    t.equal(reading.length, 0, 'nothing kept of a refused row');
  }
  t.same(cells(await read(framed, sql)), cells(parsed), 'the connection reads rows as before after a refusal');
  t.equal(pids.size, 1, 'a refused row keeps the connection');
  // pg refuses a named statement whose text changed before it sends anything: the read fails, it does not hang.
  const rows = (name: string, text: string) => poolRows(framed).each({ name, text, values: [], rowMode: 'array' }, { row: () => undefined, message: () => undefined });
  await rows('test_renamed', "SELECT 'public', 't', 1::float8, 1::float8");
  await t.rejects(rows('test_renamed', "SELECT 'public', 'u', 1::float8, 1::float8"), /Prepared statements must be unique/);
  t.same(cells(await read(framed, sql)), cells(parsed), 'and the connection reads rows after that too');
});
