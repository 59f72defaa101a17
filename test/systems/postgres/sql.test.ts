import t from 'tap';
import { nameCandidates, nameReadings, quoteIdent, reindexStatement, retentionSql, sqlName, vacuumStatement } from '../../../src/systems/postgres/sql.js';

t.test('SQL text: identifiers always quoted', async (t) => {
  t.equal(quoteIdent('plain'), '"plain"');
  t.equal(quoteIdent('x"; DROP TABLE y; --'), '"x""; DROP TABLE y; --"');
  t.throws(() => quoteIdent('a\u0000b'), /NUL/);
  t.same(nameCandidates('a.b.c'), [{ schema: 'a', name: 'b.c' }, { schema: 'a.b', name: 'c' }]);
  t.same(nameCandidates('orders'), [{ schema: 'public', name: 'orders' }]);
  t.same(nameCandidates('.x'), [{ schema: 'public', name: '.x' }]);
  t.same(nameCandidates('x.'), [{ schema: 'public', name: 'x.' }]);
  // The SQL reading of a name: how PostgreSQL itself would read it in a statement.
  t.same(sqlName('PUBLIC.Orders'), { schema: 'public', name: 'orders' });
  t.same(sqlName('"orders"'), { schema: 'public', name: 'orders' });
  t.same(sqlName('"Odd ""Name"".x"'), { schema: 'public', name: 'Odd "Name".x' });
  t.same(sqlName('"public"."a.b"'), { schema: 'public', name: 'a.b' });
  t.same(sqlName('_x$1.y'), { schema: '_x$1', name: 'y' });
  for (const text of ['a.b.c', '"open', 'a..b', 'a.', '.a', '1abc', 'a b', 'x; DROP TABLE y', '""']) t.equal(sqlName(text), null, `not SQL: ${text}`);
  t.same(nameReadings('PUBLIC.orders'), [{ schema: 'PUBLIC', name: 'orders', literal: true }, { schema: 'public', name: 'orders', literal: false }]);
  t.same(nameReadings('public.orders'), [{ schema: 'public', name: 'orders', literal: true }], 'the SQL reading is left out when it is the literal one');
  t.same(nameReadings('"public"."orders"'), [{ schema: '"public"', name: '"orders"', literal: true }, { schema: 'public', name: 'orders', literal: false }]);
  t.equal(vacuumStatement({ schema: 's', name: 't' }, { full: false, analyze: false }), 'VACUUM "s"."t"');
  t.equal(reindexStatement({ kind: 'index', name: { schema: 's', name: 'i"x' } }, false), 'REINDEX INDEX "s"."i""x"');
  t.equal(reindexStatement({ kind: 'table', name: { schema: 's', name: 't' } }, true), 'REINDEX TABLE CONCURRENTLY "s"."t"');
  const sql = retentionSql({ table: { schema: 's', name: 't' }, archive: null, columns: ['a'], timestampColumn: 'ts', cutoff: new Date('2024-01-01T00:00:00Z'), batchSize: 10, where: 'deleted_at IS NOT NULL' });
  t.equal(sql.countOlder, `SELECT count(*)::bigint AS rows FROM "s"."t" WHERE "ts" < '2024-01-01T00:00:00.000Z'::timestamptz AND (deleted_at IS NOT NULL)`);
  t.equal(sql.insertArchive, '');
});
