/**
 * Start-up benchmark: the installed package (`npm pack`, installed with production dependencies
 * only, run by plain node) from spawn to its first 200 on /healthz, and its idle RSS, side by side
 * with Debian's prometheus-postgres-exporter and prometheus-redis-exporter from spawn to their
 * first answer, on the same machine in one run. Then one more start of each, scraped 60 times
 * (/metrics, 100 ms apart), and its RSS after: no goal, what a server's idle life costs.
 *   npm run bench:startup [-- --runs 10]
 * Prints numbers and MET / NOT MET against the goal (first /healthz under 1 s); asserts nothing.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { freePort } from '../src/demo/servers/ports.js';
import { startPostgres } from '../src/demo/servers/postgres.js';
import { startRedis } from '../src/demo/servers/redis.js';
import { upkeepBin } from '../test/product/installed.js';
import { recordGoal } from './goals.js';

const { values: options } = parseArgs({ options: { runs: { type: 'string', default: '10' } } });
const RUNS = Number(options.runs);
const GOAL_MS = 1000;
const IDLE_GOAL_MB = 60;
const SCRAPES = 60;

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? Number.NaN) / 1024;
}

interface Started { ms: number; rssMb: number; scrapedRssMb?: number }

/**
 * Milliseconds from spawn to the first 200 from `path`, and the RSS one second after it. With
 * `scrapes`, the RSS again after that many GETs of `scrapePath`, 100 ms apart: a server's idle
 * life is being scraped, and what its first scrapes compile and allocate stays.
 */
async function timeToFirstAnswer(command: string, args: (port: number) => string[], path: string, env: Record<string, string> = {},
  scrape?: { path: string; count: number }): Promise<Started> {
  const port = await freePort();
  const started = process.hrtime.bigint();
  // In a temporary directory: examples/minimal.yml keeps its state in ./data.
  const child = spawn(command, args(port), { stdio: 'ignore', cwd: tmpdir(), env: { PATH: process.env.PATH ?? '', ...env } });
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${command} exited with ${child.exitCode}`);
      try {
        const response = await fetch(`http://127.0.0.1:${port}${path}`);
        await response.arrayBuffer();
        if (response.status === 200) break;
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const idle = await rssMb(child.pid ?? 0);
    if (!scrape) return { ms, rssMb: idle };
    for (let n = 0; n < scrape.count; n += 1) {
      const response = await fetch(`http://127.0.0.1:${port}${scrape.path}`);
      if (!response.ok) throw new Error(`${command}: ${scrape.path} answered ${response.status}`);
      await response.arrayBuffer();
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return { ms, rssMb: idle, scrapedRssMb: await rssMb(child.pid ?? 0) };
  } finally {
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  }
}

/** RUNS starts, then one more that is scraped SCRAPES times. */
async function series(name: string, measure: (scrape?: { path: string; count: number }) => Promise<Started>, scrapePath: string) {
  const results = [];
  for (let run = 0; run < RUNS; run += 1) results.push(await measure());
  const scraped = await measure({ path: scrapePath, count: SCRAPES });
  return { name, ms: median(results.map((result) => result.ms)), rssMb: median(results.map((result) => result.rssMb)), scrapedRssMb: scraped.scrapedRssMb ?? Number.NaN };
}

log(`start-up benchmark: ${RUNS} runs each, ${cpus().length} CPUs, load average ${loadavg().map((value) => value.toFixed(2)).join(' ')}`);
const bin = await upkeepBin();
const config = new URL('../examples/minimal.yml', import.meta.url).pathname;
const postgres = await startPostgres();
const redis = await startRedis();
try {
  const upkeep = await series('upkeep (installed, examples/minimal.yml)', (scrape) =>
    timeToFirstAnswer(bin, (port) => ['serve', '--config', config, '--port', String(port)], '/healthz', {}, scrape), '/metrics');
  const postgresExporter = await series('postgres_exporter', (scrape) => timeToFirstAnswer('/usr/bin/prometheus-postgres-exporter',
    (port) => [`--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], '/',
    { DATA_SOURCE_NAME: `host=127.0.0.1 port=${postgres.port} user=postgres dbname=postgres sslmode=disable` }, scrape), '/metrics');
  const redisExporter = await series('redis_exporter', (scrape) => timeToFirstAnswer('/usr/bin/prometheus-redis-exporter',
    (port) => [`--redis.addr=redis://127.0.0.1:${redis.port}`, `--web.listen-address=127.0.0.1:${port}`], '/', {}, scrape), '/metrics');
  log('');
  log(`| program | spawn to first answer, median | idle RSS, median | RSS after ${SCRAPES} scrapes (one run) |`);
  log('|---|---|---|---|');
  for (const row of [upkeep, postgresExporter, redisExporter]) log(`| ${row.name} | ${row.ms.toFixed(0)} ms | ${row.rssMb.toFixed(1)} MB | ${row.scrapedRssMb.toFixed(1)} MB |`);
  log('');
  log(`upkeep / postgres_exporter: ${(upkeep.ms / postgresExporter.ms).toFixed(2)}x; upkeep / redis_exporter: ${(upkeep.ms / redisExporter.ms).toFixed(2)}x`);
  log(`goal: first /healthz under ${GOAL_MS} ms: ${upkeep.ms.toFixed(0)} ms: ${upkeep.ms < GOAL_MS ? 'MET' : 'NOT MET'}`);
  log(`goal: idle RSS <= ${IDLE_GOAL_MB} MB: ${upkeep.rssMb.toFixed(1)} MB: ${upkeep.rssMb <= IDLE_GOAL_MB ? 'MET' : 'NOT MET'}`);
  await recordGoal({ id: 'memory-idle', upkeep: upkeep.rssMb, peer: postgresExporter.rssMb, ratio: upkeep.rssMb / postgresExporter.rssMb, met: upkeep.rssMb <= IDLE_GOAL_MB, note: `median of ${RUNS}, 1 s after the first /healthz` });
} finally {
  await postgres.destroy();
  await redis.destroy();
}
