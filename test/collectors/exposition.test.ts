import { readFile, writeFile } from 'node:fs/promises';
import { text as readAll } from 'node:stream/consumers';
import { Counter, Gauge, Registry } from 'prom-client';
import t from 'tap';
import { ArrayPool, type Borrowed } from '../../src/collectors/framework/array-pool.js';
import { Scraper } from '../../src/collectors/framework/scraper.js';
import type { CollectorInstance, CollectorModule } from '../../src/collectors/framework/types.js';
import { postgres, postgresResult, type DatabaseResult } from '../../src/collectors/postgres.js';
import { TableRows } from '../../src/collectors/postgres-table-rows.js';
import { TABLE_STAT_COLUMNS } from '../../src/collectors/postgres-queries.js';
import { TableColumns, type TableName } from '../../src/collectors/postgres-table-columns.js';
import { bufferLogger } from '../fixtures/log.js';

// The exposition of a fixed catalog reading, byte for byte: families, order, label escaping and
// number formatting. The fixture was recorded from the exposition as prom-client rendered it
// before the scraper rendered its families to text itself (issue 13); regenerate it only for a
// deliberate change of the exposition (UPDATE_FIXTURE=1).
const FIXTURE = new URL('../fixtures/exposition/postgres.prom', import.meta.url);

/** A pg_stat_user_tables row as the collector's query returns it: schema, table, then TABLE_STAT_COLUMNS. */
function table(schema: string, name: string, i: number): [string, string, ...(number | null)[]] {
  return [
    schema, name,
    (i * 37) % 101, i * 1000 + 0.5, // dead_tuples, live_tuples
    i % 3 === 0 ? null : 1_700_000_000 + i, // last_vacuum
    i % 4 === 0 ? null : 1_700_000_100.25 + i, // last_analyze
    i % 5 === 0 ? 1_700_000_200 + i : null, // last_autovacuum
    i % 6 === 0 ? 1_700_000_300 + i : null, // last_autoanalyze
    i % 7, i % 2, i % 3, 1e21 + i, // vacuum_count, autovacuum_count, analyze_count, autoanalyze_count
    i === 7 ? Number.POSITIVE_INFINITY : i * 3, // mods_since_analyze
  ];
}

/** A reading of rows, as the collector's reader pushes them. */
function reading(database: string, columns: TableColumns['columns'], rows: readonly unknown[][], arrays?: Borrowed): TableColumns {
  const columnsRead = new TableColumns(database, columns, { arrays });
  for (const row of rows) columnsRead.push(row);
  return columnsRead;
}

/** Two databases; names that need escaping; a tables.limit that leaves some out; sizes for some. */
function catalog(arrays?: Borrowed): DatabaseResult[] {
  const names = ['orders', 'a"quoted"', 'back\\slash', 'new\nline', 'ünïcode', 'zeta'];
  return ['app', 'billing'].map((database, d) => {
    const rows = names.map((name, i) => table(i % 2 === 0 ? 'public' : 'audit', name, i + d * names.length));
    const tableBytes = new Map<string, Map<string, number>>();
    rows.filter((_, i) => i !== 2).forEach(([schema, name], i) => tableBytes.set(schema, (tableBytes.get(schema) ?? new Map<string, number>()).set(name, 8192 * (i + 1))));
    return {
      database, tables: reading(database, TABLE_STAT_COLUMNS, rows, arrays), oldestTransactionSeconds: d === 0 ? 0 : 12.345,
      sizes: d === 0 ? { value: { databaseBytes: 7_654_321, tableBytes, unusedIndexes: 2, unusedIndexBytes: 16_384 }, ageSeconds: 4.5 } : null,
      statements: d === 0 ? [{ queryid: '-123456789', seconds: 0.125, calls: 42 }, { queryid: '987654321', seconds: 3.5e-7, calls: 1 }] : null,
      xidAges: reading(database, [{ name: 'xid_age', nullable: false }], rows.map(([schema, name], i) => [schema, name, 1000 + i * 10 + d]), arrays),
    };
  });
}

/**
 * The exposition of the fixed catalog, `scrapes` times. With a pool, the collection borrows its
 * readings' and published columns' arrays from it as the PostgreSQL collector does.
 */
async function render(scrapes = 1, pool?: ArrayPool): Promise<{ texts: string[]; registry: Registry }> {
  const { log } = bufferLogger();
  const registry = new Registry();
  new Gauge({ name: 'test_before', help: 'Registered before the collectors.', labelNames: ['version'], registers: [registry] }).set({ version: '1.2.3' }, 1);
  const filter = { include: [], exclude: ['audit.zeta'], minDeadTuples: 1, limit: 9 };
  const rows = new Map(['app', 'billing'].map((database) => [database, new TableRows('main', database)]));
  const row = (database: string, table: TableName) => rows.get(database)!.rowOf(table);
  const server = [{ family: 'upkeep_postgres_xid_age', labels: { target: 'main', database: 'template0' }, value: 12_345 }];
  const instance: CollectorInstance = {
    collector: 'postgres', target: 'main',
    collect: async () => {
      if (!pool) return postgresResult({ target: 'main', tables: filter, row }, ['app', 'billing', 'gone'], catalog(), server);
      const readings = pool.borrow();
      const published = pool.borrow();
      const result = postgresResult({ target: 'main', tables: filter, row, arrays: { scratch: readings, published } }, ['app', 'billing', 'gone'], catalog(readings), server);
      readings.giveBack();
      return { ...result, release: () => published.giveBack() };
    },
  };
  const down: CollectorInstance = { collector: 'postgres', target: 'down', collect: async () => { throw new Error('connection refused'); } };
  const modules: CollectorModule[] = [postgres];
  const scraper = new Scraper(registry, modules, new Map([[postgres, [instance, down]]]), 5, log);
  new Counter({ name: 'test_after_total', help: 'Registered after the collectors.', labelNames: ['outcome'], registers: [registry] }).inc({ outcome: 'ok' }, 3);
  const texts: string[] = [];
  for (let i = 0; i < scrapes; i += 1) texts.push(await readAll(await scraper.scrape()));
  return { texts, registry };
}

/** The two families whose values are clock readings, zeroed. */
function timeless(text: string): string {
  return text.replace(/^(upkeep_collector_(?:duration_seconds|last_success_timestamp_seconds)\{[^}]*\}) .*$/gm, '$1 0');
}

t.test('a fixed catalog reading renders the recorded exposition, byte for byte', async (t) => {
  const { texts: [text = ''] } = await render();
  if (process.env.UPDATE_FIXTURE === '1') await writeFile(FIXTURE, timeless(text));
  t.equal(timeless(text), await readFile(FIXTURE, 'utf8'));
});

t.test('prom-client renders the same families the same way', async (t) => {
  const { texts: [text = ''], registry } = await render();
  t.equal(timeless(await registry.metrics()), timeless(text));
});

t.test('columns in arrays reused from earlier collections render the same exposition', async (t) => {
  // Arrays of every size the collection asks for, holding numbers no reading has.
  const pool = new class extends ArrayPool {
    dirtyTaken = 0;
    override take(length: number): Float64Array {
      const array = super.take(length);
      if (array[0] === -42) this.dirtyTaken += 1;
      return array;
    }
  }();
  const dirty = pool.borrow();
  for (const length of [1, 2, 3, 6, 9, 12, 64, 704]) for (let copy = 0; copy < 8; copy += 1) dirty.take(length).fill(-42);
  dirty.giveBack();
  const { texts } = await render(3, pool);
  const fixture = await readFile(FIXTURE, 'utf8');
  texts.forEach((text, i) => t.equal(timeless(text), fixture, `scrape ${i + 1}`));
  t.ok(pool.dirtyTaken >= 8, `the collections wrote into arrays used before (${pool.dirtyTaken})`);
  t.ok(pool.size > 0, 'the arrays went back to the pool');
});
