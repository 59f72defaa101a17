import t from 'tap';
import { TableRows } from '../../src/collectors/postgres-table-rows.js';

t.test('a table keeps one label row across collections, its labels escaped once', async (t) => {
  const rows = new TableRows('main', 'app');
  const first = rows.row('public', 'a"b');
  t.same(first.labelValues, ['main', 'app', 'public', 'a"b']);
  t.equal(Buffer.from(first.labelText).toString('utf8'), 'target="main",database="app",schema="public",table="a\\"b"');
  rows.endCollection();
  t.equal(rows.row('public', 'a"b'), first, 'the same row the next collection');
  t.not(rows.row('audit', 'a"b'), first, 'another schema, another row');
  t.equal(rows.size, 2);
});

t.test('rows no collection used are forgotten once they are most of the rows', async (t) => {
  const rows = new TableRows('main', 'app');
  for (let i = 0; i < 300; i += 1) rows.row('public', `t${i}`);
  rows.endCollection();
  t.equal(rows.size, 300);
  // 100 tables left: 200 unused rows are not yet more than twice the used ones and 100.
  for (let i = 0; i < 100; i += 1) rows.row('public', `t${i}`);
  rows.endCollection();
  t.equal(rows.size, 300, 'kept while they are not most of the rows');
  for (let i = 0; i < 50; i += 1) rows.row('public', `t${i}`);
  rows.row('other', 'x');
  rows.endCollection();
  t.equal(rows.size, 51, 'only the rows the last collection used');
  const kept = rows.row('public', 't0');
  rows.endCollection();
  t.equal(rows.row('public', 't0'), kept);
});

t.test('find names a table exported before without marking it used', async (t) => {
  const rows = new TableRows('main', 'app');
  t.equal(rows.find('public', 'a'), undefined, 'not exported yet');
  rows.row('public', 'a');
  const found = rows.find('public', 'a');
  t.same(found && { schema: found.schema, table: found.table }, { schema: 'public', table: 'a' });
  t.equal(rows.find('public', 'a'), found, 'the same kept names every time');
  t.equal(rows.find('other', 'a'), undefined);
  for (let i = 0; i < 300; i += 1) rows.row('public', `t${i}`);
  rows.endCollection();
  t.ok(rows.find('public', 'a'));
  rows.row('public', 't0');
  rows.endCollection();
  t.equal(rows.find('public', 'a'), undefined, 'found but not used: forgotten like any unused row');
});

t.test('rowOf takes the kept names find gave, or looks up any other name', async (t) => {
  const rows = new TableRows('main', 'app');
  const other = new TableRows('main', 'billing');
  const first = rows.row('public', 'a');
  for (let i = 0; i < 300; i += 1) rows.row('public', `t${i}`);
  rows.endCollection();
  const kept = rows.find('public', 'a');
  t.ok(kept);
  t.equal(rows.rowOf(kept!), first, 'the kept row itself');
  t.equal(rows.rowOf({ schema: 'public', table: 'a' }), first, 'a plain name is looked up');
  const elsewhere = other.rowOf(kept!);
  t.not(elsewhere, first, 'another database\'s names are not its rows');
  t.same(elsewhere.labelValues, ['main', 'billing', 'public', 'a']);
  rows.endCollection();
  t.equal(rows.size, 1, 'rowOf marked the row used: it is kept, the 300 others are not');
});
