/**
 * The PostgreSQL half of the scrape benchmark, for memory only and quicker to repeat: one throwaway
 * PostgreSQL 15 with the scrape bench's catalog (3 databases x 3,400 tables), then `--runs` fresh
 * processes of the installed package (npm pack, production dependencies only, plain node), each
 * scraped once to warm up and `--scrapes` times more. Prints each run's idle RSS, its peak (the
 * kernel's VmHWM, not a sample) and the scrape p50. No peer and no Redis: `npm run bench:scrape`
 * gives the goal's figures.
 *   node --import tsx bench/scrape-memory.ts [--runs 3 --scrapes 15 --tables 3400 --databases 3 --upkeep-node-options=...]
 * Peak RSS moves by 10-15 MB between identical runs: compare variants by several runs each.
 * See docs/performance.md, "Typed columns and streamed rows".
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from '../src/demo/servers/ports.js';
import { startPostgres } from '../src/demo/servers/postgres.js';
import { upkeepCommand } from '../test/product/installed.js';
import { createTables } from './scrape-data.js';
import { scrape } from './scrape-client.js';
import { percentile, startService } from './scrape-procs.js';

const { values: options } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    scrapes: { type: 'string', default: '15' },
    tables: { type: 'string', default: '3400' },
    databases: { type: 'string', default: '3' },
    'upkeep-node-options': { type: 'string', default: '' },
  },
});

/** A field of /proc/PID/status, in MB. */
async function statusMb(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? Number.NaN) / 1024;
}

const load = () => loadavg().map((value) => value.toFixed(1)).join(' ');

const postgres = await startPostgres({ settings: { autovacuum: 'off' } });
const dir = await mkdtemp(join(tmpdir(), 'upkeep-bench-memory-'));
try {
  const databases = Array.from({ length: Number(options.databases) }, (_, i) => `bench${i + 1}`);
  await Promise.all(databases.map((database) => createTables(postgres, database, Number(options.tables))));
  const config = join(dir, 'postgres.yaml');
  await writeFile(config, `targets:\n  postgres:\n    - { name: bench, url: "${postgres.url()}", databases: auto, tables: { limit: 100000 } }\n`);
  const nodeOptions = options['upkeep-node-options'].split(' ').filter((flag) => flag !== '');
  process.stdout.write(`${databases.length} x ${options.tables} tables, ${options.scrapes} scrapes a run after one warm-up${nodeOptions.length > 0 ? `, node ${nodeOptions.join(' ')}` : ''}\n\n`);
  process.stdout.write('| run | idle RSS MB | peak RSS MB (VmHWM) | p50 ms | output bytes | load average (1/5/15 min) at the end |\n|---:|---:|---:|---:|---:|---|\n');
  for (let run = 1; run <= Number(options.runs); run += 1) {
    const port = await freePort();
    const launch = await upkeepCommand(nodeOptions);
    const upkeep = await startService('upkeep', launch.file, [...launch.args, 'serve', '--config', config, '--port', String(port), '--log-level', 'warn'],
      `http://127.0.0.1:${port}/metrics`, `http://127.0.0.1:${port}/healthz`);
    try {
      const idle = await statusMb(upkeep.pid, 'VmRSS');
      await scrape(upkeep.url);
      const scrapes = [];
      for (let i = 0; i < Number(options.scrapes); i += 1) scrapes.push(await scrape(upkeep.url));
      const peak = await statusMb(upkeep.pid, 'VmHWM');
      const p50 = percentile(scrapes.map((s) => s.seconds * 1000), 50);
      process.stdout.write(`| ${run} | ${idle.toFixed(1)} | ${peak.toFixed(1)} | ${p50.toFixed(0)} | ${(scrapes.at(-1)?.bytes ?? 0).toLocaleString('en-US')} | ${load()} |\n`);
    } finally {
      await upkeep.stop();
    }
  }
} finally {
  await postgres.destroy();
  await rm(dir, { recursive: true, force: true });
}
