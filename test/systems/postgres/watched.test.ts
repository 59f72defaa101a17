import t from 'tap';
import { isSystemSchema, tableFilter, urlDatabase } from '../../../src/systems/postgres/watched.js';

t.test('system schemas: PostgreSQL\'s own, never a user schema', async (t) => {
  for (const schema of ['pg_catalog', 'information_schema', 'pg_toast', 'pg_temp_3', 'pg_toast_temp_3']) t.equal(isSystemSchema(schema), true, schema);
  for (const schema of ['public', 'audit', 'PG_CATALOG', 'information_schema2', 'xpg_catalog']) t.equal(isSystemSchema(schema), false, schema);
});

t.test('table filters: include (any, when none) and no exclude, on "schema.table"', async (t) => {
  const all = tableFilter({ include: [], exclude: [] });
  t.equal(all('public', 'orders'), true);
  const filtered = tableFilter({ include: ['^public\\.', '^audit\\.events$'], exclude: ['_archive$', '^public\\.secrets$'] });
  t.same(
    [['public', 'orders'], ['public', 'orders_archive'], ['public', 'secrets'], ['audit', 'events'], ['audit', 'logins'], ['private', 'orders']].map(([schema, table]) => filtered(schema ?? '', table ?? '')),
    [true, false, false, true, false, false],
  );
});

t.test('the database a target URL names (discovery runs there), "postgres" when it names none', async (t) => {
  t.equal(urlDatabase('postgres://monitor:secret@db.internal:5432/app?sslmode=require'), 'app');
  t.equal(urlDatabase('postgres://monitor@db.internal:5432'), 'postgres');
  t.equal(urlDatabase('postgresql://monitor@db.internal/'), 'postgres');
  t.equal(urlDatabase('postgres://monitor@db.internal/my%20db'), 'my db');
});
