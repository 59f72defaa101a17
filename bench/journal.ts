/**
 * Journal benchmark: the installed package (npm pack, then npm install of the tarball, as users
 * get it) serving journals of 1,000,000 and 2,000,000 runs made by bench/make-journal.ts.
 * For each size it prints the start-up time to the first /healthz, RSS after start and after
 * paging, and the latency of GET /runs (first page, a filtered page, a cursor walk deep into
 * the journal) and GET /runs/:id, then each goal with MET or NOT MET.
 *   npm run bench:journal [-- --sizes 1000000,2000000 --starts 3]
 * Prints numbers; it asserts nothing. See docs/performance.md, "Journal benchmark".
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Agent, request } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { freePort } from '../src/demo/servers/ports.js';
import { memoryOf, upkeepBin } from '../test/product/installed.js';
import { makeJournal, type MadeJournal } from './make-journal.js';
import { percentile } from './scrape-procs.js';
import { recordGoal } from './goals.js';

const { values: options } = parseArgs({ options: { sizes: { type: 'string', default: '1000000,2000000' }, starts: { type: 'string', default: '3' } } });
const MB = 1024 * 1024;
const page = z.object({ runs: z.array(z.object({ id: z.string(), status: z.string(), trigger: z.string(), queuedAt: z.string() })), next: z.string().nullable() });

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

const agent = new Agent({ keepAlive: true, maxSockets: 1 });

/** One GET over a kept-alive connection: status, body and milliseconds. */
function get(port: number, path: string): Promise<{ status: number; body: string; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString(), ms: performance.now() - started }));
      response.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

interface Serving {
  readonly pid: number;
  readonly port: number;
  readonly startSeconds: number;
  stop(): Promise<void>;
}

/** Starts the installed `upkeep serve` and times it to its first /healthz (polled every 5 ms). */
async function serve(configFile: string): Promise<Serving> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(await upkeepBin(), ['serve', '--config', configFile, '--port', String(port)], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
  let errors = '';
  child.stderr.on('data', (chunk: Buffer) => { errors += chunk.toString(); });
  const exited = once(child, 'exit');
  for (;;) {
    if (child.exitCode !== null) throw new Error(`upkeep exited: ${errors}`);
    const ok = await get(port, '/healthz').then((reply) => reply.status === 200, () => false);
    if (ok) break;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const startSeconds = (performance.now() - started) / 1000;
  return {
    pid: child.pid ?? 0, port, startSeconds,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

function latencies(label: string, ms: readonly number[]): string {
  return `${label.padEnd(44)} p50 ${percentile(ms, 50).toFixed(1).padStart(6)} ms   p99 ${percentile(ms, 99).toFixed(1).padStart(6)} ms   (${ms.length} requests)`;
}

function goal(label: string, value: number, limit: number, unit: string, strict = false): string {
  const met = strict ? value < limit : value <= limit;
  return `  ${label}: ${value.toFixed(unit === 'MB' ? 0 : 2)} ${unit} (goal ${strict ? '<' : '<='} ${limit} ${unit}): ${met ? 'MET' : 'NOT MET'}`;
}

async function measure(made: MadeJournal, configFile: string, starts: number): Promise<{ startSeconds: number; firstP99: number; rssAfterStart: number; peak: number }> {
  const startTimes: number[] = [];
  for (let attempt = 1; attempt < starts; attempt += 1) {
    const server = await serve(configFile);
    startTimes.push(server.startSeconds);
    await server.stop();
  }
  const server = await serve(configFile);
  startTimes.push(server.startSeconds);
  try {
    const startSeconds = percentile(startTimes, 50);
    const afterStart = await memoryOf(server.pid);
    log(`start-up to first /healthz: ${startTimes.map((seconds) => seconds.toFixed(2)).join(', ')} s (median ${startSeconds.toFixed(2)} s)`);
    log(`RSS after start:            ${(afterStart.rss / MB).toFixed(0)} MB`);
    const timed = async (path: string, times: number) => {
      const ms: number[] = [];
      for (let i = 0; i < times; i += 1) {
        const reply = await get(server.port, path);
        if (reply.status !== 200) throw new Error(`GET ${path}: ${reply.status} ${reply.body.slice(0, 200)}`);
        ms.push(reply.ms);
      }
      return ms;
    };
    const first = await timed('/runs', 300);
    log(latencies('GET /runs (first page, 100 runs)', first));
    log(latencies('GET /runs?trigger=cli&status=failure', await timed('/runs?trigger=cli&status=failure', 200)));
    log(latencies('GET /runs?remediation=redis.bgsave', await timed('/runs?remediation=redis.bgsave', 200)));
    const walkFrom = async (limit: number, pages: number) => {
      const ms: number[] = [];
      let cursor: string | null = null;
      let walked = 0;
      for (let at = 0; at < pages; at += 1) {
        const reply = await get(server.port, `/runs?limit=${limit}${cursor === null ? '' : `&cursor=${cursor}`}`);
        const body = page.parse(JSON.parse(reply.body));
        ms.push(reply.ms);
        walked += body.runs.length;
        cursor = body.next;
        if (cursor === null) break;
      }
      log(latencies(`cursor walk, limit ${limit} (${walked.toLocaleString('en-US')} runs deep)`, ms));
    };
    await walkFrom(100, 2000);
    const byId: number[] = [];
    for (let i = 0; i < 500; i += 1) {
      const id = made.sampleIds[i % made.sampleIds.length] ?? made.newestId;
      const reply = await get(server.port, `/runs/${id}`);
      if (reply.status !== 200) throw new Error(`GET /runs/${id}: ${reply.status}`);
      byId.push(reply.ms);
    }
    log(latencies('GET /runs/:id (ids from oldest to newest)', byId));
    const afterPaging = await memoryOf(server.pid);
    log(`RSS after paging:           ${(afterPaging.rss / MB).toFixed(0)} MB, peak (VmHWM) ${(afterPaging.peak / MB).toFixed(0)} MB`);
    // Pages of 1000 runs (the largest) make more garbage per request; V8 collects it later.
    await walkFrom(1000, 300);
    const afterLarge = await memoryOf(server.pid);
    log(`RSS after 1000-run pages:   ${(afterLarge.rss / MB).toFixed(0)} MB, peak (VmHWM) ${(afterLarge.peak / MB).toFixed(0)} MB`);
    return { startSeconds, firstP99: percentile(first, 99), rssAfterStart: afterStart.rss, peak: afterPaging.peak };
  } finally {
    await server.stop();
  }
}

const RETENTION_DAYS = 10;

/**
 * Serves the same journal with `state.retention` a third of its span, walks it whole and prints
 * how many runs are left and how old the oldest is (issue 12 #6: retention trims it).
 */
async function retention(dir: string, stateDir: string, runs: number): Promise<void> {
  const configFile = join(dir, `upkeep-${runs}-retention.yml`);
  await writeFile(configFile, JSON.stringify({ state: { dir: stateDir, retention: `${RETENTION_DAYS} days` }, collectors: { disabled: ['disks', 'backups', 'logs', 'http', 'postgres', 'redis', 'docker'] } }));
  const server = await serve(configFile);
  try {
    const horizon = Date.now() - RETENTION_DAYS * 86_400_000;
    let kept = 0;
    let oldest = Number.POSITIVE_INFINITY;
    let cursor: string | null = null;
    const started = performance.now();
    do {
      const reply = await get(server.port, `/runs?limit=1000${cursor === null ? '' : `&cursor=${cursor}`}`);
      const body = page.parse(JSON.parse(reply.body));
      kept += body.runs.length;
      for (const run of body.runs) oldest = Math.min(oldest, Date.parse(run.queuedAt));
      cursor = body.next;
    } while (cursor !== null);
    const after = await memoryOf(server.pid);
    log(`state.retention "${RETENTION_DAYS} days": start-up ${server.startSeconds.toFixed(2)} s, ${kept.toLocaleString('en-US')} runs kept of ${runs.toLocaleString('en-US')}, the oldest queued ${((Date.now() - oldest) / 86_400_000).toFixed(2)} days ago; walked in ${((performance.now() - started) / 1000).toFixed(1)} s; RSS ${(after.rss / MB).toFixed(0)} MB`);
    log(`  retention trims to state.retention (whole segments, so within a day of it): ${oldest >= horizon - 86_400_000 ? 'MET' : 'NOT MET'}`);
  } finally {
    await server.stop();
  }
}

async function main(): Promise<void> {
  const sizes = options.sizes.split(',').map(Number);
  const dir = await mkdtemp(join(tmpdir(), 'upkeep-bench-journal-'));
  log(`installing the package (npm pack, npm install)...`);
  await upkeepBin();
  try {
    for (const runs of sizes) {
      const stateDir = join(dir, `state-${runs}`);
      const made = await (async () => {
        const started = performance.now();
        const result = await makeJournal({ stateDir, runs });
        log(`\n== ${runs.toLocaleString('en-US')} runs: ${result.segments} segments, ${(result.bytes / MB).toFixed(0)} MiB, made in ${((performance.now() - started) / 1000).toFixed(1)} s; load average ${loadavg().map((load) => load.toFixed(2)).join(' ')}`);
        return result;
      })();
      const configFile = join(dir, `upkeep-${runs}.yml`);
      await writeFile(configFile, JSON.stringify({ state: { dir: stateDir }, collectors: { disabled: ['disks', 'backups', 'logs', 'http', 'postgres', 'redis', 'docker'] } }));
      const result = await measure(made, configFile, Number(options.starts));
      log(`goals at ${runs.toLocaleString('en-US')} runs:`);
      if (runs === 1_000_000) {
        log(goal('start-up (issue 13)', result.startSeconds, 2, 's'));
        log(goal('GET /runs first page p99 (issue 13)', result.firstP99, 20, 'ms'));
        await recordGoal({ id: 'journal-start', upkeep: result.startSeconds, peer: null, ratio: null, met: result.startSeconds <= 2, note: 'median time to the first /healthz' });
        await recordGoal({ id: 'journal-page', upkeep: result.firstP99, peer: null, ratio: null, met: result.firstP99 <= 20, note: 'first page' });
      }
      if (runs === 2_000_000) {
        log(goal('start-up (issue 12 #6)', result.startSeconds, 5, 's', true));
        log(goal('RSS peak, start and paging with the default page (issue 9 #4, issue 12 #6)', result.peak / MB, 150, 'MB', true));
        log(goal('GET /runs first page p99 (issue 12 #6)', result.firstP99, 50, 'ms', true));
        await retention(dir, stateDir, runs);
      }
      await rm(stateDir, { recursive: true, force: true });
    }
  } finally {
    agent.destroy();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
