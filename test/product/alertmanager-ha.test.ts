import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { startUntilReady } from '../../src/demo/servers/process.js';
import { startTestPostgres } from '../actions/postgres-fixture.js';
import { freePort, waitFor } from '../fixtures/ports.js';
import { tempDir, VACUUM_RULE } from '../http/helpers.js';
import { serveInstalled, writeConfig, type Served } from './installed.js';

const BIN = process.env.ALERTMANAGER_BIN ?? '/usr/bin/prometheus-alertmanager';
const TABLES = Array.from({ length: 100 }, (_unused, index) => `t${String(index + 1).padStart(3, '0')}`);
// Each Alertmanager sends each alert at once and again after this, so every replica gets it twice or more per episode.
const REPEAT_SECONDS = 2;

interface Alertmanager { url: string; destroy(): Promise<void> }

/** Two prometheus-alertmanager instances clustered on loopback, each sending every alert to every replica. */
async function startPair(t: { teardown(fn: () => unknown): void }, replicas: readonly Served[]): Promise<Alertmanager[]> {
  const gossip = [await freePort(), await freePort()];
  const config = [
    'route:', '  receiver: upkeep', "  group_by: ['...']", '  group_wait: 0s', '  group_interval: 1s', `  repeat_interval: ${REPEAT_SECONDS}s`,
    'receivers:', '  - name: upkeep', '    webhook_configs:',
    ...replicas.flatMap((replica) => [`      - url: ${replica.base}/alertmanager`, '        send_resolved: false']), '',
  ].join('\n');
  const pair: Alertmanager[] = [];
  for (const [index, port] of gossip.entries()) {
    const dir = await tempDir(t, 'upkeep-am-ha-');
    await writeFile(join(dir, 'alertmanager.yml'), config);
    const web = await freePort();
    const url = `http://127.0.0.1:${web}`;
    const { destroy } = await startUntilReady('alertmanager', BIN, [
      `--config.file=${join(dir, 'alertmanager.yml')}`, `--storage.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${web}`,
      `--cluster.listen-address=127.0.0.1:${port}`, `--cluster.advertise-address=127.0.0.1:${port}`, `--cluster.peer=127.0.0.1:${gossip[1 - index]}`,
      '--cluster.peer-timeout=1s', '--cluster.settle-timeout=2s', '--log.level=warn',
    ], url, dir);
    t.teardown(destroy);
    pair.push({ url, destroy });
  }
  return pair;
}

async function postAlerts(am: Alertmanager, alerts: unknown[]): Promise<void> {
  const response = await fetch(`${am.url}/api/v2/alerts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(alerts) });
  if (!response.ok) throw new Error(`POST /api/v2/alerts: ${response.status} ${await response.text()}`);
}

function alertsFor(startsAt: Date, endsAt: Date): unknown[] {
  return TABLES.map((table) => ({
    labels: { alertname: 'PostgresDeadTuplesHigh', severity: 'warning', target: 'main', database: 'app', schema: 'public', table },
    startsAt: startsAt.toISOString(), endsAt: endsAt.toISOString(),
  }));
}

t.test('an Alertmanager HA pair sends 100 dead-tuple alerts to three installed replicas over two episodes: each table vacuumed once, then not inside the cooldown', async (t) => {
  const server = await startTestPostgres(t, { log_statement: "'none'" });
  await server.query('create database app');
  await server.query('create database upkeep');
  for (const table of TABLES) {
    await server.query(`create table ${table} (id int primary key, payload text); insert into ${table} select g, 'x' from generate_series(1, 100) g; delete from ${table} where id <= 40`, [], 'app');
  }
  await waitFor('the dead tuples in the stats', async () => {
    const [row] = await server.query<{ count: string }>('select count(*)::text as count from pg_stat_user_tables where n_dead_tup >= 40', [], 'app');
    if (Number(row?.count) !== TABLES.length) throw new Error(`${row?.count} tables`);
  }, 30_000, 200);
  const config = {
    targets: { postgres: [{ name: 'main', url: server.url('app') }] },
    collectors: { disabled: ['disks', 'backups', 'logs', 'http', 'postgres', 'redis', 'docker'] },
    remediation: { rules: [VACUUM_RULE], cooldownSeconds: 3600 },
  };
  const replicas = await Promise.all([1, 2, 3].map(async () => {
    const { file } = await writeConfig(t, { ...config, state: { dir: await tempDir(t), postgres: { url: server.url('upkeep') } } });
    return serveInstalled(t, file);
  }));
  const pair = await startPair(t, replicas);
  const runs = async () => server.query<{ status: string; table: string; starts: string; pid: number }>(`
    select status, record->'params'->>'table' as table, record->'alert'->>'startsAt' as starts, pid from upkeep.runs where trigger = 'alert'`, [], 'upkeep');
  const vacuumCounts = async () => server.query<{ relname: string; vacuum_count: string }>("select relname, vacuum_count::text as vacuum_count from pg_stat_user_tables where relname like 't%' order by relname", [], 'app');

  const episode = async (name: string, startsAt: Date) => {
    const endsAt = new Date(startsAt.getTime() + 3_600_000);
    for (const am of pair) await postAlerts(am, alertsFor(startsAt, endsAt));
    // Twice per episode at least: the first send and one repeat, from each Alertmanager to each replica.
    await waitFor(`${name}: every alert delivered twice to every replica`, async () => {
      const rows = (await runs()).filter((run) => Date.parse(run.starts) === startsAt.getTime());
      const perTable = new Map<string, number>();
      for (const row of rows) perTable.set(row.table, (perTable.get(row.table) ?? 0) + 1);
      const short = TABLES.filter((table) => (perTable.get(`public.${table}`) ?? 0) < 2 * replicas.length);
      if (short.length > 0) throw new Error(`${short.length} tables delivered fewer than ${2 * replicas.length} times`);
    }, 120_000, 500);
    // Resolved, so the deliveries stop: a run refused for its cooldown gives its claim back, and
    // each repeat would queue another.
    for (const am of pair) await postAlerts(am, alertsFor(startsAt, new Date()));
    await new Promise((resolve) => setTimeout(resolve, 2 * REPEAT_SECONDS * 1000));
    await waitFor(`${name}: every run finished`, async () => {
      const open = (await runs()).filter((run) => run.status === 'queued' || run.status === 'running');
      if (open.length > 0) throw new Error(`${open.length} open`);
    }, 120_000, 500);
    return (await runs()).filter((run) => Date.parse(run.starts) === startsAt.getTime());
  };

  const first = await episode('episode 1', new Date(Date.now() - 1000));
  const executed = first.filter((run) => run.status === 'success');
  t.equal(executed.length, TABLES.length, 'one executing run per alert');
  t.same(new Set(executed.map((run) => run.table)).size, TABLES.length, 'one per table');
  t.same(first.filter((run) => run.status !== 'success' && run.status !== 'duplicate'), [], 'every other delivery was a duplicate of the executing run');
  t.ok(new Set(executed.map((run) => run.pid)).size > 1, 'the replicas shared the work');
  t.same((await vacuumCounts()).filter((row) => row.vacuum_count !== '1'), [], 'every table vacuumed exactly once');

  // The same alerts firing again, inside the hour's cooldown (a new startsAt, after the resolution).
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  const second = await episode('episode 2', new Date());
  t.same(second.filter((run) => run.status === 'success'), [], 'no run executed inside the cooldown');
  t.same((await vacuumCounts()).filter((row) => row.vacuum_count !== '1'), [], 'no table vacuumed again');
  t.comment(`deliveries journalled: episode 1 ${first.length}, episode 2 ${second.length}; statuses in episode 2: ${[...new Set(second.map((run) => run.status))].join(', ')}`);

  for (const replica of replicas) {
    t.same(replica.logLines().filter((line) => typeof line.level !== 'number' || line.level >= 50), [], 'no errors logged');
    t.equal(await replica.stop(), 0, 'exits 0 on SIGTERM', { output: replica.output() });
  }
});
