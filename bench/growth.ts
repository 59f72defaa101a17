/**
 * Growth benchmark: upkeep's PostgreSQL scrape time (p50) and peak RSS as the catalog grows, in
 * tables (one database) and in databases (200 tables each) on one target, with every table
 * exported and with `tables.limit: 1000`; writes docs/performance-growth.svg (hand-written SVG).
 *   npm run bench:growth [-- --tables 1000,10000,50000 --databases 1,10,50 --scrapes 7]
 * upkeep is the installed package (test/product/installed.ts). Prints numbers; asserts nothing.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from '../src/demo/servers/ports.js';
import { startPostgres, type PostgresServer } from '../src/demo/servers/postgres.js';
import { upkeepBin } from '../test/product/installed.js';
import { loadAverage, recordGoal } from './goals.js';
import { growthSvg, type Series } from './growth-svg.js';
import { linesStartingWith, scrape } from './scrape-client.js';
import { percentile, RssSampler, startService } from './scrape-procs.js';

const { values: options } = parseArgs({
  options: {
    tables: { type: 'string', default: '1000,10000,50000' },
    databases: { type: 'string', default: '1,10,50' },
    'tables-per-database': { type: 'string', default: '200' },
    limit: { type: 'string', default: '1000' },
    scrapes: { type: 'string', default: '7' },
  },
});
const TABLE_STEPS = options.tables.split(',').map(Number);
const DATABASE_STEPS = options.databases.split(',').map(Number);
const PER_DATABASE = Number(options['tables-per-database']);
const LIMIT = Number(options.limit);
const SCRAPES = Number(options.scrapes);
const MB = 1024 * 1024;
const WARM_UP_MS = 60_000;

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** Adds tables `from`..`to` (1 to 10 dead tuples each) to `database`, committing every 500. */
async function addTables(server: PostgresServer, database: string, from: number, to: number): Promise<void> {
  await server.query(`DO $$ BEGIN
    FOR i IN ${from}..${to} LOOP
      EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY)', 'table_' || i);
      EXECUTE format('INSERT INTO %I SELECT generate_series(1, 20)', 'table_' || i);
      EXECUTE format('DELETE FROM %I WHERE id <= %s', 'table_' || i, 1 + i % 10);
      IF i % 500 = 0 THEN COMMIT; END IF;
    END LOOP;
  END $$`, [], database);
}

interface Point { x: number; p50Ms: number; peakMb: number }

/**
 * Scrapes until every expected table is exported (at most WARM_UP_MS): the first collection of 50
 * databases opens 50 sessions and reads every size, and took over its 5 s budget on a busy
 * machine; the scrapes meanwhile answer without those tables, which is no measure of a scrape.
 */
async function warmUp(url: string, expected: number): Promise<void> {
  const started = performance.now();
  for (;;) {
    const exported = linesStartingWith((await scrape(url)).text, 'upkeep_postgres_dead_tuples{');
    if (exported === expected) return;
    if (performance.now() - started > WARM_UP_MS) throw new Error(`${exported} of ${expected} tables exported after ${WARM_UP_MS / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
}

/** Starts the installed upkeep on `databases`, scrapes it, and stops it; every measured scrape must export `expected` tables. */
async function measure(dir: string, server: PostgresServer, databases: readonly string[], limit: number, expected: number): Promise<Point & { series: number }> {
  const port = await freePort();
  const config = join(dir, `growth-${port}.yaml`);
  await writeFile(config, `targets:\n  postgres:\n    - { name: bench, url: "${server.url()}", databases: [${databases.join(', ')}], tables: { limit: ${limit} } }\n`);
  const service = await startService('upkeep', await upkeepBin(), ['serve', '--config', config, '--port', String(port), '--log-level', 'warn'],
    `http://127.0.0.1:${port}/metrics`, `http://127.0.0.1:${port}/healthz`);
  const sampler = new RssSampler([service.pid]);
  try {
    await warmUp(service.url, expected);
    const times: number[] = [];
    let series = 0;
    for (let i = 0; i < SCRAPES; i += 1) {
      const result = await scrape(service.url);
      times.push(result.seconds * 1000);
      series = linesStartingWith(result.text, 'upkeep_postgres_dead_tuples{');
      if (series !== expected) throw new Error(`scrape ${i + 1}: ${series} of ${expected} tables exported; upkeep said: ${service.output()}`);
    }
    await sampler.sample();
    return { x: 0, p50Ms: percentile(times, 50), peakMb: (sampler.peaks.get(service.pid) ?? 0) / MB, series };
  } finally {
    sampler.stop();
    await service.stop();
  }
}

/** At most linear: from each step to the next, neither figure grows faster than the size (20% slack for noise). */
function linear(points: readonly Point[], figure: (point: Point) => number): boolean {
  return points.every((point, i) => i === 0 || figure(point) / figure(points[i - 1]!) <= (point.x / points[i - 1]!.x) * 1.2);
}

const dir = await mkdtemp(join(tmpdir(), 'upkeep-growth-'));
const server = await startPostgres({ settings: { autovacuum: 'off', max_locks_per_transaction: '1024' } });
try {
  log(`growth benchmark: tables ${TABLE_STEPS.join(', ')} (one database), databases ${DATABASE_STEPS.join(', ')} of ${PER_DATABASE} tables, ${SCRAPES} scrapes each; load average ${loadAverage()}`);
  const byTables: Series[] = [{ name: 'every table', points: [] }, { name: `tables.limit ${LIMIT}`, points: [] }];
  await server.query('CREATE DATABASE growth');
  let created = 0;
  for (const tables of TABLE_STEPS) {
    await addTables(server, 'growth', created + 1, tables);
    created = tables;
    // The new catalog's pages written out now, not by a checkpoint in the middle of the scrapes.
    await server.query('CHECKPOINT');
    for (const [i, limit] of [100_000_000, LIMIT].entries()) {
      const point = await measure(dir, server, ['growth'], limit, Math.min(limit, tables));
      byTables[i]!.points.push({ ...point, x: tables });
      log(`${tables} tables, limit ${limit}: p50 ${point.p50Ms.toFixed(1)} ms, peak RSS ${point.peakMb.toFixed(0)} MB, ${point.series} tables exported; load average ${loadAverage()}`);
    }
  }
  const byDatabases: Series[] = [{ name: 'every table', points: [] }];
  let databases = 0;
  for (const count of DATABASE_STEPS) {
    for (let d = databases + 1; d <= count; d += 1) {
      await server.query(`CREATE DATABASE db${d}`);
      await addTables(server, `db${d}`, 1, PER_DATABASE);
    }
    databases = count;
    await server.query('CHECKPOINT');
    const point = await measure(dir, server, Array.from({ length: count }, (_, d) => `db${d + 1}`), 100_000_000, count * PER_DATABASE);
    byDatabases[0]!.points.push({ ...point, x: count });
    log(`${count} databases x ${PER_DATABASE} tables: p50 ${point.p50Ms.toFixed(1)} ms, peak RSS ${point.peakMb.toFixed(0)} MB, ${point.series} tables exported; load average ${loadAverage()}`);
  }
  const svg = growthSvg([
    { title: 'scrape p50 (ms) by tables, one database', series: byTables, figure: 'p50Ms' },
    { title: 'peak RSS (MB) by tables, one database', series: byTables, figure: 'peakMb' },
    { title: `scrape p50 (ms) by databases (${PER_DATABASE} tables each)`, series: byDatabases, figure: 'p50Ms' },
    { title: `peak RSS (MB) by databases (${PER_DATABASE} tables each)`, series: byDatabases, figure: 'peakMb' },
  ], `upkeep ${new Date().toISOString().slice(0, 16)}Z, load average ${loadAverage()}`);
  const file = new URL('../docs/performance-growth.svg', import.meta.url).pathname;
  await writeFile(file, svg);
  log(`wrote ${file}`);
  const all = [byTables[0]!.points, byDatabases[0]!.points];
  const isLinear = all.every((points) => linear(points, (p) => p.p50Ms) && linear(points, (p) => p.peakMb));
  const limited = byTables[1]!.points;
  const flatRss = limited.every((point) => point.peakMb <= (limited[0]?.peakMb ?? 0) * 1.2);
  const biggest = byTables[0]!.points.at(-1);
  await recordGoal({ id: 'growth', upkeep: biggest?.p50Ms ?? Number.NaN, peer: null, ratio: null, met: isLinear && flatRss,
    note: `at most linear: ${isLinear}; RSS flat past tables.limit: ${flatRss}; figure: p50 ms at ${biggest?.x} tables; plot docs/performance-growth.svg` });
} finally {
  await server.destroy();
  await rm(dir, { recursive: true, force: true });
}
