import { access } from 'node:fs/promises';
import t from 'tap';
import { startTestPostgres, tableStats, tableWithDeadTuples } from '../actions/postgres-fixture.js';
import { tempDir } from '../http/helpers.js';
import { serveInstalled, writeConfig, type Served } from './installed.js';

// The job every 10 s with one clock 30 s ahead, watched for two minutes, scaled down: what
// it proves is the ratio (the fast clock three ticks ahead, a dozen ticks watched), not the seconds.
const FAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
const TICK_SECONDS = 2;
const TICK_MS = TICK_SECONDS * 1000;
// libfaketime (Debian's `faketime`): one replica's wall clock, and nothing else, three ticks ahead.
const SKEW_SECONDS = 3 * TICK_SECONDS;
// Ten ticks fired by all three replicas plus the three the fast clock fires ahead of the others,
// which tells one run per tick from two.
const WATCH_MS = 10 * TICK_MS;

t.test('a job every 2 s on three installed replicas, one clock three ticks ahead: exactly one run per tick', async (t) => {
  await access(FAKETIME).catch(() => { throw new Error(`${FAKETIME} is missing: apt-get install faketime`); });
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await server.query('create database upkeep');
  await tableWithDeadTuples(server, 'app', 'ticks', 100, 10);
  const config = {
    targets: { postgres: [{ name: 'main', url: server.url('app') }] },
    remediation: { cooldownSeconds: 0 },
    schedule: [{ name: 'vacuum-ticks', cron: `*/${TICK_SECONDS} * * * * *`, remediation: 'postgres.vacuum', params: { target: 'main', database: 'app', table: 'public.ticks' } }],
  };
  const files = await Promise.all([1, 2, 3].map(async () => (await writeConfig(t, { ...config, state: { dir: await tempDir(t), postgres: { url: server.url('upkeep') } } })).file));
  const skewed = { LD_PRELOAD: FAKETIME, FAKETIME: `+${SKEW_SECONDS}s`, FAKETIME_DONT_FAKE_MONOTONIC: '1' };
  const replicas = await Promise.all(files.map((file, index) => serveInstalled(t, file, index === 2 ? { env: skewed } : {})));
  const ahead = replicas[2]!;
  await new Promise((resolve) => setTimeout(resolve, WATCH_MS));
  // Stopped together, half a tick after the last one fired. A replica that claims a tick while it
  // shuts down journals that tick's run cancelled ('upkeep is shutting down'), as it should; stopped
  // one after another, or at a tick, a replica could do so and fail the check that every run finished.
  const phase = Date.now() % TICK_MS;
  await new Promise((resolve) => setTimeout(resolve, (TICK_MS / 2 - phase + TICK_MS) % TICK_MS));
  const exits = await Promise.all(replicas.map((replica) => replica.stop()));
  for (const [index, replica] of replicas.entries()) t.equal(exits[index], 0, 'exits 0 on SIGTERM', { output: replica.output() });

  const claims = await server.query<{ nominal_ms: string; run_id: string }>("select nominal_ms, run_id from upkeep.tick_claims where job = 'vacuum-ticks' order by nominal_ms", [], 'upkeep');
  const runs = await server.query<{ id: string; status: string; pid: number }>("select id, status, pid from upkeep.runs where trigger = 'schedule' order by queued_ms", [], 'upkeep');
  const nominal = claims.map((claim) => Number(claim.nominal_ms));
  t.ok(nominal.length >= WATCH_MS / TICK_MS, `ticks claimed: ${nominal.length}`);
  t.ok(nominal.every((time, index) => time % TICK_MS === 0 && (index === 0 || time - (nominal[index - 1] ?? 0) > 0)), 'one claim per tick, on the grid');
  // A tick may go unclaimed only as src/triggers/schedule.ts allows: every replica's timer fired
  // over a second late (the tick is missed, not backfilled) or found the entry's previous run still
  // going (skipped), and each said so in a warn line. On two starved CPUs that happens; silently,
  // never.
  const gaps: number[] = [];
  for (let time = (nominal[0] ?? 0) + TICK_MS; time < (nominal.at(-1) ?? 0); time += TICK_MS) if (!nominal.includes(time)) gaps.push(time);
  const accounted = (replica: Served, time: number): boolean => replica.logLines().some((line) =>
    (line.nominal === new Date(time).toISOString())
    || (typeof line.missed === 'string' && typeof line.count === 'number' && time >= Date.parse(line.missed) && time < Date.parse(line.missed) + line.count * TICK_MS));
  t.same(gaps.filter((time) => !replicas.every((replica) => accounted(replica, time))).map((time) => new Date(time).toISOString()), [],
    `every tick between the first and the last claimed, or missed or skipped by every replica with a warn line (gaps: ${gaps.length})`);
  t.same(runs.map((run) => run.id).sort(), claims.map((claim) => claim.run_id).sort(), 'exactly one run per tick: each claimed tick has its run and no run lacks a claim');
  // The first vacuums the table; later ticks find no dead tuples and skip on the condition.
  t.same(runs.filter((run) => run.status !== 'success' && run.status !== 'skipped'), [], 'every run finished, vacuuming or finding nothing to do');
  const pids = new Set(runs.map((run) => run.pid));
  t.ok(pids.has(ahead.child.pid ?? -1), 'the replica whose clock is ahead ran the ticks it reached first');
  t.ok(pids.size >= 2, 'and the others ran the ticks that had passed on its clock before it started');

  const submitted = replicas.flatMap((replica) => replica.logLines()).filter((line) => line.msg === 'scheduled run submitted');
  t.equal(submitted.length, runs.length, 'the replicas together submitted one run per tick');
  t.equal((await tableStats(server, 'app', 'ticks')).vacuumCount, runs.filter((run) => run.status === 'success').length, 'the table was vacuumed once per successful run');
  for (const replica of replicas) t.same(replica.logLines().filter((line) => typeof line.level !== 'number' || line.level >= 50), [], 'no errors logged');
});
