/**
 * PostgreSQL state store benchmark: three store instances (three replicas' pools) on one
 * throwaway PostgreSQL. Prints how fast alert claims are decided when the three race on the
 * same keys, how long an append takes, and the latency of GET /runs pages (first, filtered,
 * deep by cursor) and of a get by id over a journal of `--runs` runs.
 *   node --import tsx bench/state-postgres.ts [--runs 50000 --claims 3000]
 * Prints numbers; it asserts nothing. See docs/replicas.md, "Figures".
 */
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { createLogger } from '../src/log.js';
import type { RunRecord } from '../src/engine/journal.js';
import { startPostgres } from '../src/demo/servers/postgres.js';
import { PostgresStore } from '../src/engine/state/postgres-store.js';
import { newRunId } from '../src/engine/state/run-id.js';

const { values: options } = parseArgs({ options: { runs: { type: 'string', default: '50000' }, claims: { type: 'string', default: '3000' } } });
const RUNS = Number(options.runs);
const CLAIMS = Number(options.claims);

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN;
}

async function timed(label: string, times: number, work: (n: number) => Promise<unknown>): Promise<void> {
  const ms: number[] = [];
  for (let n = 0; n < times; n += 1) {
    const started = performance.now();
    await work(n);
    ms.push(performance.now() - started);
  }
  ms.sort((a, b) => a - b);
  log(`${label}: p50 ${percentile(ms, 50).toFixed(2)} ms, p99 ${percentile(ms, 99).toFixed(2)} ms (${times} times)`);
}

const server = await startPostgres();
try {
  log(`machine: ${cpus().length} cpus, load ${loadavg().map((value) => value.toFixed(2)).join(' ')}`);
  const settings = { url: server.url(), schema: 'bench', timeoutMs: 10_000, retentionMs: 90 * 86_400_000, cooldownMs: 300_000, failureWindowMs: 3_600_000, log: createLogger({ level: 'warn' }) };
  const stores = await Promise.all([1, 2, 3].map(() => PostgresStore.open(settings)));
  const [store] = stores;
  if (!store) throw new Error('no store');

  // Every key is claimed by all three replicas at once; exactly one must win each.
  const keys = CLAIMS / 3;
  const started = performance.now();
  const results = await Promise.all(stores.flatMap((replica, r) => Array.from({ length: keys }, (_, n) => replica.guards.claimAlert(`alert-${n}`, `run-${r}-${n}`, Date.now()))));
  const seconds = (performance.now() - started) / 1000;
  log(`alert claims: ${CLAIMS} claims of ${keys} keys by 3 replicas at once in ${seconds.toFixed(2)} s (${Math.round(CLAIMS / seconds)}/s); winners ${results.filter((holder) => holder === undefined).length} (must be ${keys})`);

  const remediations = ['postgres.vacuum', 'redis.bgsave', 'backup.pg_dump', 'files.cleanup'];
  const base = Date.now() - RUNS * 1000;
  const ids: string[] = [];
  const fillStarted = performance.now();
  for (let n = 0; n < RUNS; n += 100) {
    await Promise.all(Array.from({ length: Math.min(100, RUNS - n) }, (_, k) => {
      const at = base + (n + k) * 1000;
      const id = newRunId(at);
      ids.push(id);
      const record: RunRecord = {
        id, remediation: remediations[(n + k) % remediations.length] ?? '', trigger: 'alert', status: (n + k) % 50 === 0 ? 'failure' : 'success',
        params: { table: `public.t${n + k}` }, queuedAt: new Date(at).toISOString(), finishedAt: new Date(at + 500).toISOString(), host: 'bench', pid: 1,
      };
      return stores[(n + k) % 3]?.append(record).durable;
    }));
  }
  log(`journal: ${RUNS} runs appended 100 at a time in ${((performance.now() - fillStarted) / 1000).toFixed(1)} s`);
  const one = newRunId(Date.now());
  await timed('append (one run, committed)', 200, (n) => store.append({ id: n === 0 ? one : newRunId(Date.now()), remediation: 'r', trigger: 'manual', status: 'success', params: {}, queuedAt: new Date().toISOString() }).durable);
  await timed('GET /runs first page (100)', 50, () => store.listJson({}, null, 100));
  await timed('GET /runs?status=failure (100)', 50, () => store.listJson({ status: 'failure' }, null, 100));
  let cursor: string | null = null;
  for (let page = 0; page < Math.floor(RUNS / 200); page += 1) cursor = (await store.listJson({}, cursor, 100)).next;
  const deep = cursor;
  await timed(`GET /runs page (100) at the journal's middle, by cursor`, 50, () => store.listJson({}, deep, 100));
  await timed('GET /runs/:id', 200, (n) => store.get(ids[(n * 7919) % ids.length] ?? ''));
  await Promise.all(stores.map((replica) => replica.close()));
} finally {
  await server.destroy();
}
