import t from 'tap';
import { TableRows } from '../../src/collectors/postgres-table-rows.js';
import { TABLE_STAT_COLUMNS } from '../../src/collectors/postgres-queries.js';
import { selectTop, TableColumns } from '../../src/collectors/postgres-table-columns.js';

const readings = [900, 50, 40].map((dead, i) => {
  const reading = new TableColumns(`db${i}`, TABLE_STAT_COLUMNS);
  reading.push(['public', `t${i}`, dead, 0, null, null, null, null, 0, 0, 0, 0, 0]);
  return reading;
});

t.test('a row is checked column by column before it is kept, and a wrong one names the column', (t) => {
  const reading = new TableColumns('app', [{ name: 'dead', nullable: false }, { name: 'age', nullable: true }]);
  reading.push(['public', 't', 1.5, null]);
  t.throws(() => reading.push(['public', 't', null, 1]), { message: 'column dead: expected a number, got null' });
  t.throws(() => reading.push(['public', 't', '1', 1]), { message: 'column dead: expected a number, got string' });
  t.throws(() => reading.push(['public', 7, 1, 1]), { message: 'column table: expected text, got number' });
  t.throws(() => reading.push([null, 't', 1, 1]), { message: 'column schema: expected text, got object' });
  t.throws(() => reading.push(['public', 't', 1]), { message: 'expected rows of 4 columns (schema, table, dead, age)' });
  t.throws(() => reading.push({ schema: 'public' }), { message: 'expected rows of 4 columns (schema, table, dead, age)' });
  t.equal(reading.length, 1, 'only the good row was kept');
  t.same(reading.name(0), { schema: 'public', table: 't' });
  t.equal(reading.value(0, 0), 1.5);
  t.ok(Number.isNaN(reading.value(0, 1)), 'NULL is NaN');
  t.end();
});

t.test('rows grow past the first allocation, and a table exported before is named by its kept name', (t) => {
  const known = new TableRows('main', 'app');
  known.row('public', 't_7');
  const kept = known.find('public', 't_7');
  const reading = new TableColumns('app', [{ name: 'n', nullable: false }], { known });
  for (let i = 0; i < 1000; i += 1) reading.push(['public', `t_${i}`, i]);
  t.equal(reading.length, 1000);
  t.equal(reading.value(999, 0), 999);
  t.equal(reading.name(7), kept, 'the kept object itself');
  t.not(reading.name(8), kept);
  reading.pop();
  t.equal(reading.length, 999);
  t.equal(reading.names.length, 999);
  t.end();
});

t.test('the top rows across readings by a key, ties by database, schema and table', (t) => {
  const reading = (database: string, rows: [string, string, number][]) => {
    const columns = new TableColumns(database, [{ name: 'age', nullable: false }]);
    for (const row of rows) columns.push(row);
    return columns;
  };
  const readings = [reading('b', [['public', 'x', 5], ['public', 'y', 9], ['a', 'x', 5]]), reading('a', [['public', 'x', 5], ['public', 'z', 1]])];
  const names = (filter: Parameters<typeof selectTop>[2]) => {
    const selected = selectTop(readings, 'age', filter);
    return Array.from({ length: selected.length }, (_, i) => `${selected.database(i)}:${selected.name(i).schema}.${selected.name(i).table}`);
  };
  t.same(names({ include: [], exclude: [], limit: 10 }), ['b:public.y', 'a:public.x', 'b:a.x', 'b:public.x', 'a:public.z']);
  t.same(names({ include: [], exclude: [], limit: 2 }), ['b:public.y', 'a:public.x']);
  t.same(names({ include: [], exclude: ['^a\\.'], limit: 10, minimum: 5 }), ['b:public.y', 'a:public.x', 'b:public.x']);
  t.same(names({ include: [], exclude: [], limit: 0 }), []);
  t.end();
});

t.test('the selected rows\' columns, from the reading or from a function', (t) => {
  const selected = selectTop(readings, 'dead_tuples', { include: [], exclude: [], limit: 3 });
  t.same([...selected.column('upkeep_postgres_dead_tuples', 'dead_tuples').values], [900, 50, 40]);
  t.same([...selected.column('upkeep_postgres_last_vacuum_timestamp_seconds', 'last_vacuum').values], [NaN, NaN, NaN], 'NULL is no series');
  const sized = selected.column('upkeep_postgres_table_size_bytes', (i) => (i === 1 ? undefined : i * 10), { kind: 'x' });
  t.same([...sized.values], [0, NaN, 20]);
  t.same(sized.labels, { kind: 'x' });
  t.throws(() => selected.column('f', 'no_such_column'), { message: 'no column no_such_column' });
  t.end();
});
