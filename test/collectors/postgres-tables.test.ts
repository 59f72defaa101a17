import t from 'tap';
import { TABLE_STAT_COLUMNS } from '../../src/collectors/postgres-queries.js';
import { TableColumns, type Selection } from '../../src/collectors/postgres-table-columns.js';
import { selectTables } from '../../src/collectors/postgres-tables.js';

/** Database `database`'s rows, as the collector's reader pushes them (dead tuples, then the other columns). */
function database(name: string, rows: [schema: string, table: string, deadTuples: number][]): TableColumns {
  const reading = new TableColumns(name, TABLE_STAT_COLUMNS);
  for (const [schema, table, deadTuples] of rows) reading.push([schema, table, deadTuples, 0, null, null, null, null, 0, 0, 0, 0, 0]);
  return reading;
}

const readings = [
  database('a', [['public', 'orders', 50], ['public', 'orders_archive', 50], ['public', 'jobs', 900], ['public', 'logs', 0], ['audit', 'events', 10]]),
  database('b', [['public', 'orders', 50]]),
];
const names = (selected: Selection) => Array.from({ length: selected.length }, (_, i) => `${selected.database(i)}:${selected.name(i).schema}.${selected.name(i).table}`);
const all = { include: [], exclude: [], minDeadTuples: 0, limit: 500 };

t.test('sorts by dead tuples, ties by database, schema and table', (t) => {
  t.same(names(selectTables(readings, all)), ['a:public.jobs', 'a:public.orders', 'a:public.orders_archive', 'b:public.orders', 'a:audit.events', 'a:public.logs']);
  t.end();
});

t.test('limit keeps the top N across databases', (t) => {
  t.same(names(selectTables(readings, { ...all, limit: 2 })), ['a:public.jobs', 'a:public.orders']);
  t.end();
});

t.test('include and exclude are regular expressions on schema.table', (t) => {
  t.same(names(selectTables(readings, { ...all, include: ['^public\\.orders'] })), ['a:public.orders', 'a:public.orders_archive', 'b:public.orders']);
  t.same(names(selectTables(readings, { ...all, include: ['^public\\.orders$', '^audit\\.'] })), ['a:public.orders', 'b:public.orders', 'a:audit.events']);
  t.same(names(selectTables(readings, { ...all, exclude: ['_archive$', '^audit\\.'] })), ['a:public.jobs', 'a:public.orders', 'b:public.orders', 'a:public.logs']);
  t.end();
});

t.test('minDeadTuples drops tables below it, and applies before the limit', (t) => {
  t.same(names(selectTables(readings, { ...all, minDeadTuples: 50 })), ['a:public.jobs', 'a:public.orders', 'a:public.orders_archive', 'b:public.orders']);
  t.same(names(selectTables(readings, { ...all, minDeadTuples: 11, exclude: ['jobs'], limit: 2 })), ['a:public.orders', 'a:public.orders_archive']);
  t.end();
});
