import t from 'tap';
import { databaseUrl, urlDatabase } from '../../src/collectors/postgres-database.js';

t.test('the database a target URL names, "postgres" when it names none', (t) => {
  t.equal(urlDatabase('postgres://monitor:secret@db.internal:5432/app?sslmode=require'), 'app');
  t.equal(urlDatabase('postgres://monitor@db.internal:5432'), 'postgres');
  t.equal(urlDatabase('postgresql://monitor@db.internal/'), 'postgres');
  t.equal(urlDatabase('postgres://monitor@db.internal/my%20db'), 'my db');
  t.end();
});

t.test('a URL for another database of the same server keeps credentials and options', (t) => {
  t.equal(databaseUrl('postgres://monitor:secret@db.internal:5432/app?sslmode=require', 'reporting'), 'postgres://monitor:secret@db.internal:5432/reporting?sslmode=require');
  t.equal(databaseUrl('postgres://monitor@db.internal:5432', 'odd/name'), 'postgres://monitor@db.internal:5432/odd%2Fname');
  t.end();
});
