/**
 * Webhook benchmark: real-shaped Alertmanager payloads (the captured 0.25 fixture, one alert per
 * POST, a new fingerprint each time) sent to `upkeep serve` in its own process at a fixed rate,
 * with every remediation in dry-run against a throwaway PostgreSQL. Prints the acknowledgement
 * latency and checks that every accepted alert reached the journal.
 *   npm run bench:webhook [-- --rate 200 --duration 30]
 * Prints numbers; it asserts nothing. See docs/performance.md, "Webhook benchmark".
 */
import { spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { stringify } from 'yaml';
import { z } from 'zod';
import { runRecordSchema } from '../src/engine/journal.js';
import { freePort, waitFor } from '../src/demo/servers/ports.js';
import { startPostgres } from '../src/demo/servers/postgres.js';
import { upkeepCommand } from '../test/product/installed.js';
import { drainRate, type RunTimes } from './drain.js';
import { GOALS, loadAverage, recordGoal } from './goals.js';
import { postBytes, Sender, type Reply } from './http-sender.js';
import { cpuSeconds, rssBytes } from './scrape-procs.js';

const { values: options } = parseArgs({
  options: {
    rate: { type: 'string', default: '200' },
    duration: { type: 'string', default: '30' },
    connections: { type: 'string', default: '20' },
    tables: { type: 'string', default: '20' },
    concurrency: { type: 'string', default: '4' },
    // Above the product's default of 4: the bench measures how fast a flood of dry runs can drain.
    'dry-run-concurrency': { type: 'string', default: '16' },
    // remediation.executor: thread (the default) or inline, to measure what the thread buys.
    executor: { type: 'string', default: 'thread' },
    // Room for every alert of the run by default, so a slow drain shows as a long drain, not as 429s.
    'max-queued': { type: 'string' },
    'burst-seconds': { type: 'string', default: '10' },
    'baseline-seconds': { type: 'string', default: '10' },
    // Dry runs at a quarter of the rate before the steady load, left to drain: the pools open their
    // sessions and the executor thread starts there, not in the first seconds measured. V8 still
    // optimizes most of the run's path in those seconds: at a quarter of the rate it is not yet hot
    // (docs/performance.md, "The interrupt budget lowered during a storm").
    'warmup-seconds': { type: 'string', default: '3' },
    // What users run by default: every POST and every run logs a line at info.
    'log-level': { type: 'string', default: 'info' },
    // After the load, the server's RSS every 10 s for this long: what a server gives back (the
    // executor thread exits after 60 s without a run), then its peak RSS. 0: not measured.
    'idle-after': { type: 'string', default: '0' },
  },
});
const RATE = Number(options.rate);
const DURATION = Number(options.duration);
const TABLES = Number(options.tables);
const TOKEN = 'bench-token';
const BURST_SECONDS = Number(options['burst-seconds']);
const BASELINE_SECONDS = Number(options['baseline-seconds']);
const WARMUP_SECONDS = Number(options['warmup-seconds']);
const IDLE_AFTER = Number(options['idle-after']);
const MAX_QUEUED = Number(options['max-queued'] ?? RATE * (DURATION + BURST_SECONDS) + 1000);
const webhookReply = z.object({ accepted: z.array(z.object({ runId: z.string() })) });

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

function percentile(values: readonly number[], p: number): string {
  const sorted = [...values].sort((a, b) => a - b);
  const value = sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN;
  return value.toFixed(1);
}

function nth<T>(list: readonly T[], n: number): T {
  const item = list[n];
  if (item === undefined) throw new Error(`no item ${n} of ${list.length}`);
  return item;
}

/** The POST of one webhook payload, as it goes on the wire. */
function webhookRequest(body: string): Buffer {
  return postBytes('/alertmanager', { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body);
}

interface Paced {
  /** Each request's latency, by its number (undefined when it failed). */
  byRequest: (number | undefined)[];
  latencies: number[];
  statuses: number[];
  errors: number;
  seconds: number;
  /** When the first request was due, in ms since the epoch (to line up with the server's own clock). */
  startEpochMs: number;
}

/** Sends `rate` requests per second for `seconds`, each at its scheduled time whatever the earlier ones are doing. */
async function paced(rate: number, seconds: number, send: (n: number) => Promise<number>): Promise<Paced> {
  const interval = 1000 / rate;
  const start = performance.now();
  const byRequest: (number | undefined)[] = [];
  const statuses: number[] = [];
  let errors = 0;
  const inFlight: Promise<void>[] = [];
  for (let n = 0; n < rate * seconds; n += 1) {
    const due = start + n * interval;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    inFlight.push(send(n).then(
      (status) => { byRequest[n] = performance.now() - due; statuses.push(status); },
      () => { errors += 1; },
    ));
  }
  await Promise.all(inFlight);
  const latencies = byRequest.filter((latency) => latency !== undefined);
  return { byRequest, latencies, statuses, errors, seconds: (performance.now() - start) / 1000, startEpochMs: performance.timeOrigin + start };
}

/** The p99 of each 5-second window of a paced run, by when its requests were due. */
function windows(run: Paced, rate: number): string {
  const size = rate * 5;
  const parts: string[] = [];
  for (let from = 0; from < run.byRequest.length; from += size) {
    const slice = run.byRequest.slice(from, from + size).filter((latency) => latency !== undefined);
    parts.push(`${from / rate}-${(from + size) / rate}s ${percentile(slice, 99)}`);
  }
  return parts.join(', ');
}

const fixture = z.object({ alerts: z.array(z.object({ labels: z.record(z.string(), z.string()) }).passthrough()).min(1) }).passthrough()
  .parse(JSON.parse(await readFile(new URL('../test/fixtures/alertmanager-webhook.json', import.meta.url), 'utf8')));

/** The captured payload with alert number `n`: its own fingerprint and table. */
function payload(n: number, alertname = 'PostgresDeadTuplesHigh'): string {
  const [alert] = fixture.alerts;
  const labels = { ...alert?.labels, alertname, table: `t${n % TABLES}` };
  return JSON.stringify({ ...fixture, commonLabels: labels, groupLabels: labels, alerts: [{ ...alert, labels, fingerprint: n.toString(16).padStart(16, '0'), startsAt: new Date().toISOString() }] });
}

async function stopServer(): Promise<void> {
  if (child?.pid === undefined || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child?.once('exit', resolve));
  process.kill(child.pid, 'SIGTERM');
  await exited;
}

/** Transactions committed and rolled back in every database so far (the bench's own reads add one each). */
async function transactions(): Promise<number> {
  const [row] = await postgres.query<{ n: string }>('select sum(xact_commit + xact_rollback)::text as n from pg_stat_database');
  return Number(row?.n ?? 0);
}

const root = await mkdtemp(join(tmpdir(), 'upkeep-bench-webhook-'));
const postgres = await startPostgres({ settings: { autovacuum: 'off' } });
let child: ReturnType<typeof spawn> | null = null;
try {
  await postgres.query('create database app');
  for (let table = 0; table < TABLES; table += 1) {
    await postgres.query(`create table t${table} (id int); insert into t${table} select generate_series(1, 200); delete from t${table} where id <= 100`, [], 'app');
  }
  const stateDir = join(root, 'state');
  const configFile = join(root, 'upkeep.yml');
  await writeFile(configFile, stringify({
    server: { authToken: TOKEN },
    state: { dir: stateDir },
    targets: { postgres: [{ name: 'main', url: postgres.url('app') }] },
    remediation: {
      dryRun: true, cooldownSeconds: 0, concurrency: Number(options.concurrency), dryRunConcurrency: Number(options['dry-run-concurrency']), maxQueued: MAX_QUEUED, executor: options.executor,
      rules: [{ match: { alertname: 'PostgresDeadTuplesHigh' }, remediation: 'postgres.vacuum', params: { target: '{{labels.target}}', database: '{{labels.database}}', table: '{{labels.schema}}.{{labels.table}}' } }],
    },
  }));
  const port = await freePort();
  // For looking inside the server: UPKEEP_BENCH_FLAGS, node flags (--perf-basic-prof, --trace-opt);
  // UPKEEP_BENCH_PROF, a directory for its CPU profiles; UPKEEP_BENCH_LATENCIES, a file for each steady
  // request's latency (to find the server's stalls by time); UPKEEP_BENCH_STDOUT, a file for its stdout
  // (else a file in the run's directory: a log written somewhere, as a service's is, not /dev/null).
  const { UPKEEP_BENCH_FLAGS: flags, UPKEEP_BENCH_PROF: profiles, UPKEEP_BENCH_STDOUT: stdout, UPKEEP_BENCH_LATENCIES: latencyFile } = process.env;
  // Node's flags, the profiler's among them (node refuses --cpu-prof in NODE_OPTIONS), go on node's
  // command line, which skips bin/upkeep's sizing of V8's helper threads: add --v8-pool-size=N to
  // UPKEEP_BENCH_FLAGS to profile the server as installed.
  const launch = await upkeepCommand([...(flags?.split(' ').filter(Boolean) ?? []), ...(profiles ? ['--cpu-prof', '--cpu-prof-dir', profiles] : [])]);
  child = spawn(launch.file, [...launch.args, 'serve', '--config', configFile, '--port', String(port), '--log-level', options['log-level']], { stdio: ['ignore', openSync(stdout ?? join(root, 'upkeep.log'), 'w'), 'inherit'] });
  await waitFor('upkeep serve', async () => { const response = await fetch(`http://127.0.0.1:${port}/healthz`); if (!response.ok) throw new Error(String(response.status)); }, 60_000);

  let sent = 0;
  const accepted = new Set<string>();
  let unreadable = 0;
  const record = (status: number, body: string, into = accepted) => {
    if (status !== 202) return;
    const reply = webhookReply.safeParse(JSON.parse(body));
    if (!reply.success) unreadable += 1;
    else for (const run of reply.data.accepted) into.add(run.runId);
  };
  log(`load average before: ${loadavg().map((load) => load.toFixed(2)).join(' ')} on ${cpus().length} CPUs`);
  log(`webhook benchmark: ${RATE} req/s for ${DURATION}s, 1 alert per payload, ${TABLES} tables, remediation.dryRun: true, concurrency ${options.concurrency}, dryRunConcurrency ${options['dry-run-concurrency']}, executor ${options.executor}, maxQueued ${MAX_QUEUED}`);
  const serverPid = child.pid ?? 0;

  const journalDir = join(stateDir, 'journal');
  // Per finished run, from its journal lines: when it was queued, started and finished.
  const times = new Map<string, RunTimes>();
  const readJournal = async () => {
    const runs = new Map<string, string>();
    for (const segment of (await readdir(journalDir)).filter((name) => name.endsWith('.jsonl')).sort()) {
      // The last piece is after the last newline: empty, or a line upkeep is still writing.
      for (const line of (await readFile(join(journalDir, segment), 'utf8')).split('\n').slice(0, -1)) {
        if (line.trim() === '') continue;
        const record = runRecordSchema.parse(JSON.parse(line));
        runs.set(record.id, record.status);
        if (record.startedAt && record.finishedAt) times.set(record.id, { queued: Date.parse(record.queuedAt), started: Date.parse(record.startedAt), finished: Date.parse(record.finishedAt) });
      }
    }
    return runs;
  };
  const unfinished = (runs: Map<string, string>, ids: Iterable<string>) => [...ids].filter((id) => { const status = runs.get(id); return status === undefined || status === 'queued' || status === 'running'; }).length;

  const sender = new Sender(port);
  const report = (title: string, run: Paced) => {
    const codes = new Map<number, number>();
    for (const status of run.statuses) codes.set(status, (codes.get(status) ?? 0) + 1);
    log(title);
    log(`  requests:           ${run.latencies.length} in ${run.seconds.toFixed(1)}s; replies ${[...codes].map(([code, count]) => `${code} x${count}`).join(', ')}; errors ${run.errors}`);
    log(`  ack latency (ms):   p50 ${percentile(run.latencies, 50)}, p90 ${percentile(run.latencies, 90)}, p99 ${percentile(run.latencies, 99)}, max ${percentile(run.latencies, 100)}`);
    log(`  p99 by 5 s (ms):    ${windows(run, RATE)}`);
  };

  // Baseline: the same requests, but with an alertname no rule matches, so nothing is queued or
  // journalled. It shows what the HTTP path alone costs on this machine at this moment.
  let baselineP99: number | null = null;
  if (BASELINE_SECONDS > 0) {
    const requests = Array.from({ length: RATE * BASELINE_SECONDS }, (_, n) => webhookRequest(payload(n, 'NoRuleForThis')));
    const baseline = await paced(RATE, BASELINE_SECONDS, async (n) => (await sender.post(nth(requests, n))).status);
    report(`baseline ${RATE} req/s for ${BASELINE_SECONDS}s, alerts matching no rule:`, baseline);
    baselineP99 = Number(percentile(baseline.latencies, 99));
  }

  if (WARMUP_SECONDS > 0) {
    const warmRate = Math.max(1, Math.round(RATE / 4));
    // Fingerprints of their own, far from the steady load's.
    const warmRequests = Array.from({ length: warmRate * WARMUP_SECONDS }, (_, n) => webhookRequest(payload(10_000_000 + n)));
    const warmRuns = new Set<string>();
    const warm = await paced(warmRate, WARMUP_SECONDS, async (n) => {
      const reply = await sender.post(nth(warmRequests, n));
      record(reply.status, reply.body, warmRuns);
      return reply.status;
    });
    const waitStart = Date.now();
    while (unfinished(await readJournal(), warmRuns) > 0 && Date.now() - waitStart < 120_000) await new Promise((resolve) => setTimeout(resolve, 250));
    log(`warm-up ${warmRate} req/s for ${WARMUP_SECONDS}s, ${warmRuns.size} dry runs left to finish (not measured): ack p99 ${percentile(warm.latencies, 99)} ms`);
  }

  // Steady load: one POST every 1000/RATE ms, open loop; latency counts from the scheduled send time.
  // Every request is made before the clock starts, and the replies are read after it stops: the
  // sender shares the machine's two CPUs with the server it measures.
  const requests = Array.from({ length: RATE * DURATION }, (_, n) => webhookRequest(payload(n)));
  sent = requests.length;
  const cpuBefore = await cpuSeconds(serverPid);
  const transactionsBefore = await transactions();
  const replies: Reply[] = [];
  const steady = await paced(RATE, DURATION, async (n) => {
    const reply = await sender.post(nth(requests, n));
    replies.push(reply);
    return reply.status;
  });
  sender.close();
  if (latencyFile) await writeFile(latencyFile, [`# steady load: request number, ms from when it was due to its 202; the first was due at ${steady.startEpochMs.toFixed(1)} ms since the epoch, one every ${1000 / RATE} ms`, ...steady.byRequest.map((ms, n) => `${n} ${ms === undefined ? 'failed' : ms.toFixed(2)}`)].join('\n'));
  for (const reply of replies) record(reply.status, reply.body);
  report(`steady ${RATE} req/s for ${DURATION}s (open loop, own sender; goal: p99 <= 5 ms at 1,000/s):`, steady);

  // Bursts: autocannon's fixed-rate mode sends each second's requests back to back on every
  // connection, as Alertmanager does when many groups flush at once.
  if (BURST_SECONDS > 0) {
    const burst = await autocannon({
      url: `http://127.0.0.1:${port}`, connections: Number(options.connections), overallRate: RATE, duration: BURST_SECONDS,
      // autocannon's coordinated-omission correction assumes one request per 1/rate ms per connection,
      // which its once-a-second refill does not do; the raw response times are the honest number.
      ignoreCoordinatedOmission: true,
      requests: [{
        method: 'POST', path: '/alertmanager', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
        setupRequest: (request) => ({ ...request, body: payload(sent++) }),
        onResponse: (status: number, body: string) => record(status, body),
      }],
    });
    log(`bursts, autocannon ${RATE} req/s for ${BURST_SECONDS}s (${options.connections} connections, each second's requests back to back):`);
    log(`  requests:           ${burst.requests.total}; 2xx ${burst['2xx']}, non-2xx ${burst.non2xx}, errors ${burst.errors}, timeouts ${burst.timeouts}`);
    log(`  ack latency (ms):   p50 ${burst.latency.p50}, p90 ${burst.latency.p90}, p99 ${burst.latency.p99}, max ${burst.latency.max}`);
  }
  log(`unreadable replies:   ${unreadable}`);
  log(`load average after:   ${loadavg().map((load) => load.toFixed(2)).join(' ')}`);

  // Every accepted alert must be in the journal; wait for the dry runs to drain, then read it.
  const drainStart = Date.now();
  // Up to 5 minutes: a queue that has not drained by then is reported with what did finish.
  let journal = await readJournal();
  let pending = accepted.size;
  for (;;) {
    journal = await readJournal();
    pending = unfinished(journal, accepted);
    if (pending === 0 || Date.now() - drainStart > 300_000) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const drainSeconds = (Date.now() - drainStart) / 1000;
  const inJournal = [...accepted].filter((id) => journal.has(id)).length;
  const statuses = new Map<string, number>();
  for (const id of accepted) statuses.set(journal.get(id) ?? 'missing', (statuses.get(journal.get(id) ?? 'missing') ?? 0) + 1);

  log(`alerts accepted:      ${accepted.size}`);
  log(`in the journal:       ${inJournal} (lost: ${accepted.size - inJournal})`);
  log(`final run statuses:   ${[...statuses].map(([status, count]) => `${status} ${count}`).join(', ')}`);
  const timed = [...accepted].flatMap((id) => times.get(id) ?? []);
  const waited = (run: RunTimes) => run.started - run.queued;
  const ran = (run: RunTimes) => run.finished - run.started;
  log(`run times (ms):       queued p50 ${percentile(timed.map(waited), 50)}, p99 ${percentile(timed.map(waited), 99)}; running p50 ${percentile(timed.map(ran), 50)}, p99 ${percentile(timed.map(ran), 99)}`);
  log(pending === 0 ? `queue drained:        ${drainSeconds.toFixed(1)}s after the load stopped` : `queue NOT drained:    ${pending} runs still queued or running ${drainSeconds.toFixed(1)}s after the load stopped`);
  // The server's CPU from the first steady request until the queue was empty, per accepted alert
  // (acknowledging it and its dry run): the machine's load changes latencies more than this.
  const cpuUsed = await cpuSeconds(serverPid) - cpuBefore;
  log(`server CPU:           ${cpuUsed.toFixed(1)}s, ${(1000 * cpuUsed / Math.max(1, accepted.size)).toFixed(2)} ms per accepted alert`);
  // Dry runs finished per second from the first steady request until the queue was empty: at most
  // the rate alerts came at, so it says whether the queue kept up, not how fast it can go.
  const throughput = (accepted.size - pending) / (steady.seconds + (BURST_SECONDS > 0 ? BURST_SECONDS : 0) + drainSeconds);
  log(`throughput:           ${throughput.toFixed(0)} runs/s (finished runs / seconds from the first steady request to an empty queue, or to the 5-minute limit)`);
  // How fast the queue drains: runs finished per second while runs waited for a slot (bench/drain.ts).
  const drain = drainRate(timed);
  log(drain.rate === null
    ? `drain rate:           not measured: runs waited over 100 ms for a slot during ${drain.backlogSeconds.toFixed(2)} s only (under 1 s: the queue kept up)`
    : `drain rate:           ${drain.rate.toFixed(0)} runs/s while runs waited over 100 ms for a slot (${drain.finishedInBacklog} runs finished in those ${drain.backlogSeconds.toFixed(1)} s, ${drain.running.toFixed(1)} of ${options['dry-run-concurrency']} slots taken on average)`);
  if (IDLE_AFTER > 0) {
    const readings: string[] = [];
    for (let at = 0; at <= IDLE_AFTER; at += 10) {
      if (at > 0) await new Promise((resolve) => setTimeout(resolve, 10_000));
      readings.push(`${at}s ${(await rssBytes(serverPid) / 1048576).toFixed(0)}`);
    }
    log(`RSS after the load (MB): ${readings.join(', ')}`);
    // The most the server held at any moment of the run (the kernel's high-water mark).
    const peak = /VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${serverPid}/status`, 'utf8'))?.[1];
    log(`peak RSS (VmHWM, MB):    ${peak === undefined ? 'unknown' : (Number(peak) / 1024).toFixed(0)}`);
  }
  // Round trips to PostgreSQL per dry run, from the server's own count: it does not move with the
  // load. Read after upkeep stops, when every session has ended and flushed its statistics.
  await stopServer();
  const used = await transactions() - transactionsBefore;
  log(`PostgreSQL:           ${used} transactions (statements outside a transaction block), ${(used / Math.max(1, accepted.size - pending)).toFixed(2)} per finished run`);
  const steadyP99 = Number(percentile(steady.latencies, 99));
  const note = `${RATE} req/s for ${DURATION}s`;
  const goals = [
    { id: 'webhook-ack', upkeep: steadyP99, peer: baselineP99, ratio: baselineP99 ? steadyP99 / baselineP99 : null, met: RATE >= 1000 && steadyP99 <= 5, note: `steady phase p99, ${note}` },
    { id: 'webhook-lost', upkeep: accepted.size - inJournal, peer: null, ratio: null, met: accepted.size - inJournal === 0, note: `${accepted.size} accepted` },
    // No backlog at all at 1,000/s means the queue got through the runs as fast as they came.
    drain.rate === null
      ? { id: 'webhook-drain', upkeep: throughput, peer: null, ratio: null, met: RATE >= 1000 && pending === 0, note: `${accepted.size} runs; no backlog (runs waited over 100 ms during ${drain.backlogSeconds.toFixed(2)} s): the throughput` }
      : { id: 'webhook-drain', upkeep: drain.rate, peer: null, ratio: null, met: drain.rate >= 1000, note: `${accepted.size} runs; ${drain.finishedInBacklog} finished while runs waited (${drain.backlogSeconds.toFixed(1)} s)` },
  ];
  log(`goals (load average now ${loadAverage()}):`);
  for (const goal of goals) {
    const spec = GOALS.find((candidate) => candidate.id === goal.id);
    log(`  ${spec?.goal ?? goal.id}: ${goal.upkeep.toFixed(1)} ${spec?.unit ?? ''}${goal.peer === null ? '' : ` (${spec?.peer}: ${goal.peer.toFixed(1)})`} ${goal.met ? 'MET' : 'NOT MET'}`);
    await recordGoal(goal);
  }
} finally {
  await stopServer();
  await postgres.destroy();
  await rm(root, { recursive: true, force: true });
}
