import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { z } from 'zod';
import { bufferLogger } from './fixtures/log.js';
import { ensureDocker, ensureTestImage, runContainer } from './fixtures/docker.js';
import { waitFor } from '../src/demo/servers/ports.js';
import { sampleValue } from '../src/demo/report.js';
import { startScenario } from '../src/demo/scenario.js';
import { RUN_STATUSES } from '../src/engine/journal.js';
import { outcomeOf } from '../src/engine/metrics.js';

/**
 * The whole loop with real processes on 127.0.0.1: throwaway PostgreSQL (with a streaming
 * standby, so the replication panels have data) and Redis, upkeep,
 * Prometheus scraping upkeep and evaluating alerts/upkeep.rules.yml (with `for:` shortened),
 * and Alertmanager posting to upkeep with the bearer token.
 */
const amAlerts = z.array(z.object({ fingerprint: z.string(), labels: z.record(z.string(), z.string()), startsAt: z.string() }));

t.test('Prometheus -> Alertmanager -> upkeep fixes what the alerts point at', async (t) => {
  // A container gives the Docker panels something to show (it writes to its log file).
  const docker = await ensureDocker();
  await ensureTestImage(docker);
  const container = await runContainer(docker, { name: `upkeep-e2e-${process.pid}`, cmd: ['sh', '-c', 'echo started; sleep 600'] });
  t.teardown(() => container.remove({ force: true }));
  const logged = bufferLogger();
  const started = Date.now() / 1000;
  const scenario = await startScenario({ log: logged.log, standby: true });
  t.teardown(() => scenario.stop());
  const { postgres, prometheus } = scenario;
  const tableStats = async (table: string) => {
    const [row] = await postgres.query<{ vacuum_count: string; n_dead_tup: string }>(
      'SELECT vacuum_count, n_dead_tup FROM pg_stat_user_tables WHERE relname = $1', [table], 'refnet');
    return { vacuums: Number(row?.vacuum_count), dead: Number(row?.n_dead_tup) };
  };
  /**
   * The runs of one remediation once none is queued or running: what a run fixed shows (and its
   * alert resolves) before it has verified and finished.
   */
  const finishedRuns = (remediation: string) => waitFor(`${remediation} to finish`, async () => {
    const runs = (await scenario.runs()).filter((run) => run.remediation === remediation);
    const unfinished = runs.filter((run) => run.status === 'queued' || run.status === 'running');
    if (runs.length === 0 || unfinished.length > 0) throw new Error(`${runs.length} runs, ${unfinished.length} unfinished`);
    return runs;
  }, 60_000, 250);
  t.same(await tableStats('job_logs'), { vacuums: 0, dead: 40_000 }, 'dead tuples were made');
  const before = await scenario.metrics();
  t.equal(sampleValue(before, 'upkeep_postgres_dead_tuples{target="main",database="refnet",schema="public",table="job_logs"}'), 40_000);

  // The alert fires and Alertmanager holds it with a fingerprint; remember it.
  const fingerprint = await waitFor('PostgresDeadTuplesHigh in Alertmanager', async () => {
    const response = await fetch(`${scenario.alertmanager.url}/api/v2/alerts?filter=alertname%3D%22PostgresDeadTuplesHigh%22`);
    const alert = amAlerts.parse(await response.json())[0];
    if (!alert) throw new Error('not yet');
    return alert.fingerprint;
  }, 120_000, 500);

  await t.test('upkeep vacuums exactly that table, the metric falls and the alert resolves', async (t) => {
    await waitFor('the vacuum', async () => {
      const stats = await tableStats('job_logs');
      if (stats.vacuums < 1) throw new Error('not vacuumed yet');
    }, 120_000, 500);
    t.equal((await tableStats('job_logs')).dead, 0, 'no dead tuples left');
    t.equal((await tableStats('documents')).vacuums, 0, 'the table without the problem was left alone');
    await waitFor('the dead-tuple metric to fall', async () => {
      const value = sampleValue(await scenario.metrics(), 'upkeep_postgres_dead_tuples{target="main",database="refnet",schema="public",table="job_logs"}');
      if (value !== 0) throw new Error(`still ${value}`);
    }, 60_000, 500);
    await waitFor('PostgresDeadTuplesHigh to resolve', async () => {
      if ((await prometheus.alerts()).some((a) => a.labels.alertname === 'PostgresDeadTuplesHigh')) throw new Error('still active');
    }, 120_000, 500);
    const runs = (await finishedRuns('postgres.vacuum')).filter((run) => run.status === 'success');
    t.equal(runs.length, 1, 'one successful vacuum');
    t.equal(runs[0]?.trigger, 'alert');
    t.equal(runs[0]?.alert?.fingerprint, fingerprint, 'the journal links the run to the alert');
    t.equal(runs[0]?.alert?.alertname, 'PostgresDeadTuplesHigh');
  });

  await t.test('a stale backup: BackupTooOld leads to backup.pg_dump and resolves', async (t) => {
    await waitFor('a new backup', async () => {
      const files = (await readdir(scenario.dirs.backups)).filter((name) => /^refnet_\d{8}_\d{6}\.sql\.gz$/.test(name));
      if (files.length < 2) throw new Error(`only ${files.join(', ')}`);
    }, 120_000, 500);
    await waitFor('BackupTooOld to resolve', async () => {
      if ((await prometheus.alerts()).some((a) => a.labels.alertname === 'BackupTooOld')) throw new Error('still active');
    }, 120_000, 500);
    const run = (await finishedRuns('backup.pg_dump')).find((r) => r.status === 'success');
    t.equal(run?.alert?.alertname, 'BackupTooOld');
    const age = Date.now() / 1000 - (sampleValue(await scenario.metrics(), 'upkeep_backup_last_success_timestamp_seconds{backup="refnet"}') ?? 0);
    t.ok(age < 3600, `the newest backup is fresh (${Math.round(age)} s old)`);
  });

  await t.test('a failed BGSAVE: RedisBgsaveFailed leads to redis.bgsave and resolves', async (t) => {
    await waitFor('RedisBgsaveFailed to resolve', async () => {
      const value = sampleValue(await scenario.metrics(), 'upkeep_redis_rdb_last_bgsave_success{target="cache"}');
      if (value !== 1) throw new Error(`bgsave status ${value}`);
      if ((await prometheus.alerts()).some((a) => a.labels.alertname === 'RedisBgsaveFailed')) throw new Error('still active');
    }, 120_000, 500);
    const run = (await finishedRuns('redis.bgsave')).find((r) => r.status === 'success');
    t.equal(run?.alert?.alertname, 'RedisBgsaveFailed');
    const client = scenario.redis.client();
    t.teardown(() => client.disconnect());
    t.match(await client.info('persistence'), 'rdb_last_bgsave_status:ok');
  });

  await t.test('a manual backup.verify restores the new backup and records its timestamp', async (t) => {
    const response = await scenario.app.fastify.inject({
      method: 'POST', url: '/remediations/backup.verify?wait=true',
      headers: { authorization: `Bearer ${scenario.token}` },
      payload: { params: { backup: 'refnet' } },
    });
    t.equal(response.statusCode, 200, response.body);
    t.match(response.json(), { status: 'success', trigger: 'manual' });
    await waitFor('the verify timestamp', async () => {
      if (sampleValue(await scenario.metrics(), 'upkeep_backup_last_verify_success_timestamp_seconds{backup="refnet"}') === undefined) throw new Error('absent');
    }, 30_000, 500);
  });

  await t.test('a manual postgres.analyze on the standby fails: a standby cannot ANALYZE', async (t) => {
    const response = await scenario.app.fastify.inject({
      method: 'POST', url: '/remediations/postgres.analyze?wait=true',
      headers: { authorization: `Bearer ${scenario.token}` },
      payload: { params: { target: 'replica', database: 'refnet', table: 'public.job_logs' } },
    });
    t.equal(response.statusCode, 200, response.body);
    t.match(response.json(), { status: 'failure', trigger: 'manual', error: /cannot execute ANALYZE during recovery/ });
  });

  const dir = join(import.meta.dirname, '..', 'grafana', 'dashboards');
  const dashboards: { file: string; dashboard: unknown }[] = [];
  for (const file of (await readdir(dir)).filter((name) => name.endsWith('.json'))) dashboards.push({ file, dashboard: JSON.parse(await readFile(join(dir, file), 'utf8')) });
  const substitute = (expr: string) => expr.replaceAll('$__rate_interval', '1m').replaceAll('$job', 'upkeep').replaceAll('$instance', '.+');

  await t.test('every dashboard expression returns data from this Prometheus', async (t) => {
    const expressions: { file: string; expr: string; query: string }[] = [];
    for (const { file, dashboard } of dashboards) {
      for (const expr of dashboardExpressions(dashboard)) expressions.push({ file, expr, query: substitute(expr) });
    }
    t.ok(expressions.length > 40, `${expressions.length} expressions`);
    // Rates need two samples in their window; give the loop a few scrapes to produce them.
    const empty = new Set(expressions.map((e) => e.query));
    await waitFor('data for every expression', async () => {
      for (const query of [...empty]) if ((await prometheus.query(query)).length > 0) empty.delete(query);
      if (empty.size > 0) throw new Error([...empty].join('\n'));
    }, 60_000, 2000).catch(() => undefined);
    for (const { file, expr, query } of expressions) t.notOk(empty.has(query), `${file}: ${expr}`);
    t.same((await prometheus.query('upkeep_postgres_replication_info')).map((series) => [series.metric.target, series.metric.standby, series.metric.state]),
      [['main', 'replica', 'streaming']], 'the primary streams to the standby');
    t.same((await prometheus.query('upkeep_postgres_in_recovery == 1')).map((series) => series.metric.target), ['replica'], 'the standby is a target');
  });

  await t.test('remediation runs are the dashboards\' annotations, queried as Grafana does', async (t) => {
    // Grafana runs an annotation's expr as a range query over the dashboard's time range and marks
    // every point above 0, one mark per series (by remediation and outcome).
    const annotations = dashboards.flatMap(({ file, dashboard }) => annotationSchema.parse(dashboard).annotations.list.map((annotation) => ({ file, ...annotation })));
    t.same(annotations.map((annotation) => annotation.name), ['Remediation runs', 'Remediation failures', 'Remediation runs', 'Remediation failures']);
    const marked = async (expr: string) => {
      const series = await prometheus.queryRange(substitute(expr), { start: started, end: Date.now() / 1000, step: 1 });
      return [...new Set(series.filter((one) => one.values.some(([, value]) => Number(value) > 0)).map((one) => one.metric.remediation ?? ''))].sort();
    };
    // A run Prometheus can see is one that finished after its first scrape of upkeep: the
    // counter's earlier value is the one an increase starts from.
    const [buildInfo] = await prometheus.queryRange('upkeep_build_info', { start: started, end: Date.now() / 1000, step: 1 });
    const firstScrape = buildInfo?.values[0]?.[0];
    if (firstScrape === undefined) throw new Error('Prometheus never scraped upkeep');
    const journalled = async () => (await scenario.runs()).map((run) => ({ ...run, outcome: outcomeOf(z.enum(RUN_STATUSES).parse(run.status)), finished: Date.parse(run.finishedAt ?? '') / 1000 }));
    const remediations = (runs: Awaited<ReturnType<typeof journalled>>, outcomes: readonly string[], after: number) => [...new Set(runs
      .filter((run) => outcomes.includes(run.outcome ?? '') && run.finished > after).map((run) => run.remediation))].sort();
    const runs = await journalled();
    t.same(remediations(runs, ['failure'], 0), ['postgres.analyze'], 'one remediation failed: the analyze on the standby');
    const outcomes: Record<string, readonly string[]> = { 'Remediation runs': ['success', 'dry_run'], 'Remediation failures': ['failure'] };
    for (const { file, name, expr } of annotations) {
      const seen = remediations(runs, outcomes[name] ?? [], firstScrape);
      // The last runs may have finished after the last scrape: wait until Prometheus has them.
      const got = await waitFor(`${file} "${name}"`, async () => {
        const now = await marked(expr);
        if (seen.some((remediation) => !now.includes(remediation))) throw new Error(`marked ${now.join(', ')}`);
        return now;
      }, 30_000, 1000).catch(() => marked(expr));
      // Alerts keep firing while this waits (RedisKeyPatternBacklog's cleanup, say): a run
      // Prometheus counted finished before the query, so the journal read after it has it.
      const ever = remediations(await journalled(), outcomes[name] ?? [], 0);
      t.same(seen.filter((remediation) => !got.includes(remediation)), [], `${file} "${name}": marks each remediation that ran so once Prometheus was scraping (${seen.join(', ')})`);
      t.same(got.filter((remediation) => !ever.includes(remediation)), [], `${file} "${name}": and no remediation that did not`);
    }
  });

  await t.test('the log says what upkeep did, one JSON line per finished run', async (t) => {
    const lines = logged.lines();
    t.same(lines.filter((line) => 'notJson' in line), [], 'every line is JSON');
    const fixed = lines.filter((line) => line.msg === 'run finished' && line.status === 'success').map((line) => String(line.remediation));
    for (const remediation of ['postgres.vacuum', 'backup.pg_dump', 'redis.bgsave', 'backup.verify']) t.ok(fixed.includes(remediation), `a success line for ${remediation}`);
  });
});

/** Every `expr` of every target of every panel, including panels nested in rows (annotations are range queries: their own test). */
function dashboardExpressions(node: unknown): string[] {
  if (Array.isArray(node)) return node.flatMap(dashboardExpressions);
  if (node === null || typeof node !== 'object') return [];
  const out: string[] = [];
  for (const [key, value] of Object.entries(node)) {
    if (key === 'expr' && typeof value === 'string') out.push(value);
    else if (key !== 'templating' && key !== 'annotations') out.push(...dashboardExpressions(value));
  }
  return out;
}

const annotationSchema = z.object({ annotations: z.object({ list: z.array(z.object({ name: z.string(), expr: z.string() })) }) });
