import pg from 'pg';
import t from 'tap';
import { z } from 'zod';
import type { PostgresServer } from '../fixtures/postgres.js';
import { startStandby } from '../fixtures/postgres-standby.js';
import { waitFor } from '../fixtures/ports.js';
import { finishedRun, postWebhook, startApp, tempDir, testConfig, VACUUM_RULE, webhookPayload } from '../http/helpers.js';
import { holdHorizon, startTestPostgres, tableStats, tableWithDeadTuples } from './postgres-fixture.js';

// postgres.vacuum's check refuses a run the vacuum horizon makes useless, and names what holds it.

/** The vacuum autovacuum would have run already: under the held horizon it leaves every dead tuple. */
async function vacuumedInVain(server: PostgresServer): Promise<void> {
  await server.query('vacuum orders', [], 'app');
  await waitFor('the vacuum in the stats', async () => {
    const stats = await tableStats(server, 'app', 'orders');
    if (stats.vacuumCount !== 1 || stats.deadTuples !== 400) throw new Error(JSON.stringify(stats));
  });
}

t.test('an idle-in-transaction session holding the horizon: the alert-driven vacuum is skipped, naming its pid, state and age', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  const pid = await holdHorizon(t, server, 'app');
  await tableWithDeadTuples(server, 'app', 'orders');
  await vacuumedInVain(server);

  const app = await startApp(t, testConfig({ state: { dir: await tempDir(t) }, targets: { postgres: [{ name: 'main', url: server.url('app') }] }, remediation: { rules: [VACUUM_RULE] } }));
  const reply = await postWebhook(app, await webhookPayload());
  t.equal(reply.statusCode, 202);
  const run = await finishedRun(app, reply.body?.accepted[0]?.runId ?? '');
  t.equal(run.status, 'skipped');
  t.equal(run.skipCode, 'condition');
  t.match(run.reason, new RegExp(`^condition cleared: the vacuum horizon is held by backend pid ${pid} \\(idle in transaction, xmin age \\d+, idle \\d+s\\): its last vacuum left the dead tuples that died after it, and another cannot remove them$`));
  t.match(run.check?.observed, { horizonHeldBy: { kind: 'backend', name: String(pid), state: 'idle in transaction' } });
  t.equal((await tableStats(server, 'app', 'orders')).vacuumCount, 1, 'nothing more was vacuumed');
});

t.test('a role that cannot see the session holding the horizon: the vacuum runs in vain, and its failure says to grant pg_read_all_stats', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await holdHorizon(t, server, 'app');
  await tableWithDeadTuples(server, 'app', 'orders');
  await vacuumedInVain(server);
  // It owns the table, so it may vacuum it; the holder is the superuser's session, hidden from it.
  await server.query('create role blind login');
  await server.query('alter table orders owner to blind', [], 'app');
  const url = server.url('app').replace('//postgres@', '//blind@');
  const app = await startApp(t, testConfig({ state: { dir: await tempDir(t) }, targets: { postgres: [{ name: 'main', url }] } }));
  const reply = await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.vacuum?wait=true', payload: { params: { target: 'main', database: 'app', table: 'public.orders' } } });
  const run = z.object({ status: z.string(), error: z.string() }).parse(reply.json());
  t.equal(run.status, 'failure');
  t.equal(run.error, 'verification failed: "public"."orders": dead tuples did not fall (400 before, 400 after); an old open transaction may be holding them (this role cannot see other roles\' sessions: grant it pg_read_all_stats, see docs/security.md)');
});

t.test('a replication slot holding the horizon is named', async (t) => {
  const primary = await startTestPostgres(t);
  await primary.query('create database app');
  await primary.query("select pg_create_physical_replication_slot('replica_slot')");
  const standby = await startStandby(primary, { slot: 'replica_slot', name: 'replica1' });
  let stopped = false;
  t.teardown(() => (stopped ? undefined : standby.destroy()));
  await waitFor('the standby\'s feedback on its slot', async () => {
    const [row] = await primary.query<{ xmin: string | null }>("select xmin::text from pg_replication_slots where slot_name = 'replica_slot'");
    if (!row?.xmin) throw new Error('no xmin on the slot yet');
  });
  // Gone, its slot keeps the xmin it last reported: the horizon stays held.
  await standby.destroy();
  stopped = true;
  await tableWithDeadTuples(primary, 'app', 'orders');
  await vacuumedInVain(primary);

  const app = await startApp(t, testConfig({ state: { dir: await tempDir(t) }, targets: { postgres: [{ name: 'main', url: primary.url('app') }] }, remediation: { rules: [VACUUM_RULE] } }));
  const reply = await postWebhook(app, await webhookPayload());
  const run = await finishedRun(app, reply.body?.accepted[0]?.runId ?? '');
  t.equal(run.status, 'skipped');
  t.equal(run.skipCode, 'condition');
  t.match(run.reason, /^condition cleared: the vacuum horizon is held by replication slot "replica_slot" \(inactive, xmin age \d+\): its last vacuum left the dead tuples that died after it, and another cannot remove them$/);

  // Once the slot is dropped the same alert's vacuum runs and removes them.
  await primary.query("select pg_drop_replication_slot('replica_slot')");
  const again = await postWebhook(app, await webhookPayload({ fingerprint: '0123456789abcdef' }));
  const second = await finishedRun(app, again.body?.accepted[0]?.runId ?? '');
  t.equal(second.status, 'success', second.error ?? second.reason ?? '');
  t.equal((await tableStats(primary, 'app', 'orders')).deadTuples, 0, 'the dead tuples are gone');
});

t.test('acceptance: the skipped vacuum names the idle session; postgres.terminate_idle (opt-in, in a window) ends it; the next vacuum removes the dead tuples', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await server.query('create role report_job login');
  const holder = new pg.Client({ connectionString: server.url('app').replace('postgres@', 'report_job@'), application_name: 'report-job' });
  holder.on('error', () => undefined);
  await holder.connect();
  t.teardown(() => holder.end().catch(() => undefined));
  await holder.query('begin');
  await holder.query('select txid_current()');
  const [{ pid }] = z.tuple([z.object({ pid: z.number() })]).parse((await holder.query('select pg_backend_pid() as pid')).rows);
  await tableWithDeadTuples(server, 'app', 'orders');
  await vacuumedInVain(server);

  const terminateRule = {
    match: { alertname: 'PostgresIdleInTransaction' },
    remediation: 'postgres.terminate_idle',
    params: { target: '{{labels.target}}', idleSeconds: 0 },
    allowRisk: 'destructive',
  };
  const idleAlert = { labels: { alertname: 'PostgresIdleInTransaction', target: 'main', severity: 'warning', database: '', schema: '', table: '' }, fingerprint: '00000000000000aa' };
  const appWith = async (windows: unknown[]) => startApp(t, testConfig({
    state: { dir: await tempDir(t) }, targets: { postgres: [{ name: 'main', url: server.url('app') }] }, remediation: { rules: [VACUUM_RULE, terminateRule], windows },
  }));

  // Outside a window the destructive run is refused, and the session lives on.
  const closed = await appWith([]);
  const refused = await finishedRun(closed, (await postWebhook(closed, await webhookPayload(idleAlert))).body?.accepted[0]?.runId ?? '');
  t.equal(refused.status, 'skipped');
  t.equal(refused.skipCode, 'window');

  const app = await appWith([{ name: 'always', cron: '* * * * *', durationMinutes: 1 }]);
  const skipped = await finishedRun(app, (await postWebhook(app, await webhookPayload())).body?.accepted[0]?.runId ?? '');
  t.equal(skipped.status, 'skipped');
  t.match(skipped.reason, new RegExp(`the vacuum horizon is held by backend pid ${pid} \\(idle in transaction, xmin age \\d+, idle \\d+s\\)`), 'the blocker\'s pid, state and age');

  const ended = await finishedRun(app, (await postWebhook(app, await webhookPayload(idleAlert))).body?.accepted[0]?.runId ?? '');
  t.equal(ended.status, 'success', ended.error ?? ended.reason ?? '');
  t.equal(ended.risk, 'destructive');
  t.match(ended.output, { terminated: [{ pid }], leftAlone: [] });
  t.equal(ended.verification?.detail, `ended: pid ${pid}`);

  const vacuumed = await finishedRun(app, (await postWebhook(app, await webhookPayload({ fingerprint: '0123456789abcdef' }))).body?.accepted[0]?.runId ?? '');
  t.equal(vacuumed.status, 'success', vacuumed.error ?? vacuumed.reason ?? '');
  t.equal((await tableStats(server, 'app', 'orders')).deadTuples, 0, 'n_dead_tup fell to 0');
});
