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

t.test('findBytes names a table exported before from its names\' UTF-8 bytes, as find does', async (t) => {
  const rows = new TableRows('main', 'app');
  const bytes = (schema: string, table: string) => {
    const buffer = Buffer.from(`..${schema}....${table}.`, 'utf8');
    const schemaEnd = 2 + Buffer.byteLength(schema);
    return [buffer, 2, schemaEnd, schemaEnd + 4, schemaEnd + 4 + Buffer.byteLength(table)] as const;
  };
  // t_7189 and t_742194 hash alike (32-bit FNV-1a of "public", 0, the table): both must still be told apart.
  for (const table of ['a', 't_7189', 't_742194', 'ab']) rows.row('public', table);
  rows.row('tâbles', 'x');
  for (const table of ['a', 't_7189', 't_742194', 'ab']) {
    const found = rows.findBytes(...bytes('public', table));
    t.ok(found, `public.${table} found`);
    t.equal(found, rows.find('public', table), `public.${table}: the kept names find gives`);
  }
  t.equal(rows.findBytes(...bytes('public', 't_71890')), undefined, 'a longer name is another table');
  t.equal(rows.findBytes(...bytes('publi', 'ca')), undefined, 'the same bytes split elsewhere are another table');
  t.equal(rows.findBytes(...bytes('public', 'b')), undefined, 'not exported');
  t.equal(rows.findBytes(...bytes('tâbles', 'x')), rows.find('tâbles', 'x'), 'names that are not ASCII too');
  t.ok(rows.find('tâbles', 'x'));
  t.equal(rows.findBytes(...bytes('tâbles', 'y')), undefined);
  t.equal(rows.findBytes(...bytes('tâblés', 'x')), undefined);
  for (let i = 0; i < 300; i += 1) rows.row('other', `t${i}`);
  rows.endCollection();
  rows.row('public', 't_742194');
  rows.endCollection();
  t.equal(rows.findBytes(...bytes('public', 't_7189')), undefined, 'forgotten with its row');
  t.equal(rows.findBytes(...bytes('public', 't_742194')), rows.find('public', 't_742194'), 'the rows kept are still found');
});
