import { readFile } from 'node:fs/promises';
import t, { type Test } from 'tap';
import { z } from 'zod';
import { waitFor } from '../fixtures/ports.js';
import { startTestPostgres, tableStats, tableWithDeadTuples } from '../actions/postgres-fixture.js';
import { serveInstalled, writeConfig, type Served } from './installed.js';

const ALL_COLLECTORS = ['disks', 'backups', 'logs', 'http', 'postgres', 'redis', 'docker'];
const VACUUM_RULE = {
  match: { alertname: 'PostgresDeadTuplesHigh' },
  remediation: 'postgres.vacuum',
  params: { target: '{{labels.target}}', database: '{{labels.database}}', table: '{{labels.schema}}.{{labels.table}}' },
};

const reply = z.object({
  accepted: z.array(z.object({ runId: z.string(), status: z.string() })),
  ignored: z.array(z.object({ fingerprint: z.string(), reason: z.string(), remediation: z.string().optional(), runId: z.string().optional() })),
});
const runRecord = z.object({ id: z.string(), status: z.string(), reason: z.string().optional(), error: z.string().optional() }).passthrough();

/** The captured Alertmanager payload, with the alert's fingerprint and labels changed. */
async function alert(fingerprint: string, labels: Record<string, string>): Promise<string> {
  const payload = z.object({ alerts: z.array(z.object({ labels: z.record(z.string(), z.string()) }).passthrough()) }).passthrough()
    .parse(JSON.parse(await readFile(new URL('../fixtures/alertmanager-webhook.json', import.meta.url), 'utf8')));
  const alerts = payload.alerts.slice(0, 1).map((first) => ({ ...first, fingerprint, labels: { ...first.labels, ...labels } }));
  return JSON.stringify({ ...payload, alerts });
}

async function postAlert(t: Test, served: Served, body: string): Promise<z.infer<typeof reply>> {
  const response = await fetch(`${served.base}/alertmanager`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  t.equal(response.status, 202);
  t.ok(served.alive(), 'alive after the alert');
  return reply.parse(await response.json());
}

async function metricValue(served: Served, series: string): Promise<string | undefined> {
  const text = await (await fetch(`${served.base}/metrics`)).text();
  return text.split('\n').find((line) => line.startsWith(`${series} `))?.slice(series.length + 1);
}

t.test('acceptance 6, installed: alerts naming pg_catalog.pg_class, an excluded schema or an unwatched database are rejected, run nothing, leave the circuit closed; the next real alert vacuums', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await server.query('create database other');
  await tableWithDeadTuples(server, 'app', 'orders');
  await tableWithDeadTuples(server, 'other', 'orders');
  await server.query('create schema audit', [], 'app');
  await server.query('create table audit.events (id int primary key)', [], 'app');
  await server.query('insert into audit.events select generate_series(1, 100); delete from audit.events', [], 'app');
  const catalogVacuums = async () => (await server.query<{ vacuums: string }>("select vacuum_count as vacuums from pg_stat_all_tables where relid = 'pg_catalog.pg_class'::regclass", [], 'app'))[0]?.vacuums;
  const catalogBefore = await catalogVacuums();

  const { file } = await writeConfig(t, {
    targets: { postgres: [{ name: 'main', url: server.url('app'), databases: ['app'], tables: { exclude: ['^audit\\.'] } }] },
    collectors: { disabled: ALL_COLLECTORS },
    remediation: { rules: [VACUUM_RULE], cooldownSeconds: 0, circuitBreaker: { failures: 2, windowSeconds: 3600 } },
  });
  const served = await serveInstalled(t, file);

  const refused: Array<[string, Record<string, string>, string]> = [
    ['catalog', { schema: 'pg_catalog', table: 'pg_class' }, 'pg_catalog.pg_class is in the system schema pg_catalog; upkeep acts only on user tables (a manual or CLI run can go further with allowSystemCatalogs: true)'],
    ['excluded', { schema: 'audit', table: 'events' }, 'audit.events is outside targets.postgres "main" tables.include/exclude (a manual or CLI run can go further with outsideFilters: true)'],
    ['unwatched', { database: 'other' }, 'database "other" is not in targets.postgres "main" databases (app)'],
  ];
  const rejectedIds: string[] = [];
  for (const [fingerprint, labels, reason] of refused) {
    const body = await postAlert(t, served, await alert(fingerprint, labels));
    t.same(body.accepted, [], `${fingerprint}: nothing queued`);
    t.match(body.ignored, [{ fingerprint, reason: `rejected: ${reason}`, remediation: 'postgres.vacuum' }]);
    const runId = body.ignored[0]?.runId ?? '';
    const run = runRecord.parse(await (await fetch(`${served.base}/runs/${runId}`)).json());
    t.match(run, { status: 'rejected', reason }, `${fingerprint}: journalled as rejected`);
    rejectedIds.push(runId);
  }

  t.equal(await metricValue(served, 'upkeep_remediation_runs_total{remediation="postgres.vacuum",outcome="rejected"}'), '3');
  t.equal(await metricValue(served, 'upkeep_remediation_runs_total{remediation="postgres.vacuum",outcome="failure"}'), '0');
  t.equal(await metricValue(served, 'upkeep_remediation_circuit_open{remediation="postgres.vacuum"}'), '0', 'more rejections than circuitBreaker.failures, and the circuit is closed');
  t.equal(await catalogVacuums(), catalogBefore, 'pg_class was not vacuumed');
  t.equal((await tableStats(server, 'app', 'events')).vacuumCount, 0, 'audit.events was not vacuumed');
  t.equal((await tableStats(server, 'other', 'orders')).vacuumCount, 0, 'the unwatched database was not touched');
  t.same(await server.query("select pid from pg_stat_activity where application_name like 'upkeep%'"), [], 'upkeep never connected');

  const legitimate = await postAlert(t, served, await alert('legit', {}));
  const runId = legitimate.accepted[0]?.runId ?? '';
  const run = await waitFor('the legitimate vacuum to finish', async () => {
    const record = runRecord.parse(await (await fetch(`${served.base}/runs/${runId}`)).json());
    if (record.status === 'queued' || record.status === 'running') throw new Error(`still ${record.status}`);
    return record;
  });
  t.equal(run.status, 'success', run.error ?? run.reason ?? '');
  t.equal((await tableStats(server, 'app', 'orders')).vacuumCount, 1, 'vacuum_count of app.orders rose');

  t.equal(await served.stop(), 0, served.output());
  const lines = served.logLines();
  t.same(lines.filter((line) => 'notJson' in line), [], 'every log line is JSON');
  const finished = lines.filter((line) => line.msg === 'run finished').map(({ time: _time, pid: _pid, hostname: _hostname, durationSeconds, ...line }) => ({ ...line, timed: typeof durationSeconds === 'number' }));
  t.same(finished, [
    ...refused.map(([, , reason], index) => ({
      level: 40, runId: rejectedIds[index], remediation: 'postgres.vacuum', trigger: 'alert', target: null, status: 'rejected', reason, msg: 'run finished', timed: false,
    })),
    { level: 30, runId, remediation: 'postgres.vacuum', trigger: 'alert', target: 'postgres.vacuum postgres:main/app:vacuum:"public"."orders"', status: 'success', msg: 'run finished', timed: true },
  ], 'one line per run: the rejections at warn with their reason, the vacuum at info');
  const webhooks = lines.filter((line) => line.msg === 'request' && line.path === '/alertmanager');
  t.same(webhooks.map((line) => line.status), [202, 202, 202, 202], 'one request line per webhook');
});
