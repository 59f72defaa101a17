import t from 'tap';
import { databaseUrl } from '../../../src/systems/postgres/client.js';

t.test('a URL for another database of the same server keeps credentials and options', (t) => {
  t.equal(databaseUrl('postgres://monitor:secret@db.internal:5432/app?sslmode=require', 'reporting'), 'postgres://monitor:secret@db.internal:5432/reporting?sslmode=require');
  t.equal(databaseUrl('postgres://monitor@db.internal:5432', 'odd/name'), 'postgres://monitor@db.internal:5432/odd%2Fname');
  t.end();
});
