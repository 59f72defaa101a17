import t from 'tap';
import { tableSelector, type TableStats } from '../../src/collectors/postgres-tables.js';

function table(database: string, name: string, deadTuples: number, schema = 'public'): TableStats {
  return {
    database, schema, table: name, deadTuples, liveTuples: 0, lastVacuumSeconds: null, lastAnalyzeSeconds: null,
    lastAutovacuumSeconds: null, lastAutoanalyzeSeconds: null, vacuumCount: 0, autovacuumCount: 0, analyzeCount: 0, autoanalyzeCount: 0, modsSinceAnalyze: 0,
  };
}

const tables = [
  table('a', 'orders', 50),
  table('a', 'orders_archive', 50),
  table('b', 'orders', 50),
  table('a', 'jobs', 900),
  table('a', 'logs', 0),
  table('a', 'events', 10, 'audit'),
];
const names = (selected: TableStats[]) => selected.map((t) => `${t.database}:${t.schema}.${t.table}`);
const all = { include: [], exclude: [], minDeadTuples: 0, limit: 500 };

t.test('sorts by dead tuples, ties by database, schema and table', (t) => {
  t.same(names(tableSelector(all)(tables)), ['a:public.jobs', 'a:public.orders', 'a:public.orders_archive', 'b:public.orders', 'a:audit.events', 'a:public.logs']);
  t.end();
});

t.test('limit keeps the top N across databases', (t) => {
  t.same(names(tableSelector({ ...all, limit: 2 })(tables)), ['a:public.jobs', 'a:public.orders']);
  t.end();
});

t.test('include and exclude are regular expressions on schema.table', (t) => {
  t.same(names(tableSelector({ ...all, include: ['^public\\.orders'] })(tables)), ['a:public.orders', 'a:public.orders_archive', 'b:public.orders']);
  t.same(names(tableSelector({ ...all, include: ['^public\\.orders$', '^audit\\.'] })(tables)), ['a:public.orders', 'b:public.orders', 'a:audit.events']);
  t.same(names(tableSelector({ ...all, exclude: ['_archive$', '^audit\\.'] })(tables)), ['a:public.jobs', 'a:public.orders', 'b:public.orders', 'a:public.logs']);
  t.end();
});

t.test('minDeadTuples drops tables below it, and applies before the limit', (t) => {
  t.same(names(tableSelector({ ...all, minDeadTuples: 50 })(tables)), ['a:public.jobs', 'a:public.orders', 'a:public.orders_archive', 'b:public.orders']);
  t.same(names(tableSelector({ ...all, minDeadTuples: 11, exclude: ['jobs'], limit: 2 })(tables)), ['a:public.orders', 'a:public.orders_archive']);
  t.end();
});
