import t from 'tap';
import { runRecordSchema } from '../../src/engine/journal.js';
import type { PostgresServer } from '../fixtures/postgres.js';
import { finishedRun, journalLines, postWebhook, startApp, tempDir, testConfig, webhookPayload } from '../http/helpers.js';
import { startTestPostgres } from './postgres-fixture.js';

// The rule examples/refnet.yml ships for PostgresWraparoundRisk (test/examples.test.ts checks they agree).
const FREEZE_RULE = {
  match: { alertname: 'PostgresWraparoundRisk' },
  remediation: 'postgres.vacuum',
  params: { target: '{{labels.target}}', database: '{{labels.database}}', freeze: true },
};

/** Each loop iteration commits, so every txid_current() takes a new transaction ID. */
async function consumeXids(server: PostgresServer, count: number): Promise<void> {
  await server.query(`do $$ begin for i in 1..${count} loop perform txid_current(); commit; end loop; end $$`, [], 'app');
}

async function xidAge(server: PostgresServer, table: string): Promise<number> {
  const [row] = await server.query<{ age: number }>('select age(relfrozenxid)::int as age from pg_class where oid = $1::regclass', [table], 'app');
  if (!row) throw new Error(`no table ${table}`);
  return row.age;
}

t.test('PostgresWraparoundRisk: the alert-driven postgres.vacuum freeze freezes the oldest tables first and the age falls', async (t) => {
  const pg = await startTestPostgres(t);
  await pg.query('create database app');
  await pg.query("create table old_events (id int primary key, payload text); insert into old_events select g, 'x' from generate_series(1, 500) g", [], 'app');
  await consumeXids(pg, 3000);
  await pg.query("create table new_events (id int primary key, payload text); insert into new_events select g, 'x' from generate_series(1, 500) g", [], 'app');
  await consumeXids(pg, 1000);
  const [oldBefore, newBefore] = [await xidAge(pg, 'old_events'), await xidAge(pg, 'new_events')];
  t.ok(oldBefore > 4000 && newBefore > 1000 && newBefore < oldBefore, `ages raised: old_events ${oldBefore}, new_events ${newBefore}`);

  const stateDir = await tempDir(t);
  const app = await startApp(t, testConfig({
    state: { dir: stateDir },
    targets: { postgres: [{ name: 'main', url: pg.url('app') }] },
    remediation: { rules: [FREEZE_RULE] },
  }));
  const reply = await postWebhook(app, await webhookPayload({ labels: { alertname: 'PostgresWraparoundRisk', schema: '', table: '' }, fingerprint: 'a1b2c3d4e5f60718' }));
  t.equal(reply.statusCode, 202, reply.raw);
  const run = await finishedRun(app, reply.body?.accepted[0]?.runId ?? '');
  t.equal(run.status, 'success', run.error ?? run.reason ?? '');
  t.same(run.plan, [
    { kind: 'sql', detail: 'VACUUM (FREEZE, ANALYZE) "public"."old_events"' },
    { kind: 'sql', detail: 'VACUUM (FREEZE, ANALYZE) "public"."new_events"' },
  ], 'the oldest table first');
  const [oldAfter, newAfter] = [await xidAge(pg, 'old_events'), await xidAge(pg, 'new_events')];
  t.ok(oldAfter < oldBefore && newAfter < newBefore, `ages fell: old_events ${oldBefore} -> ${oldAfter}, new_events ${newBefore} -> ${newAfter}`);
  t.ok(oldAfter < 100, 'frozen up to the horizon (nothing else runs)');
  const last = (await journalLines(stateDir)).filter((line) => line.id === run.id).at(-1);
  t.equal(last?.verification?.ok, true);
  t.match(last?.verification?.detail, new RegExp(`^public\\.old_events: xid age ${oldBefore} -> \\d+, public\\.new_events: xid age ${newBefore} -> \\d+$`));
});

t.test('freeze with minXidAge skips younger tables, and a run with none over it is skipped', async (t) => {
  const pg = await startTestPostgres(t);
  await pg.query('create database app');
  await pg.query('create table old_events (id int); create table new_events (id int)', [], 'app');
  await consumeXids(pg, 2000);
  await pg.query('vacuum (freeze) new_events', [], 'app');
  const stateDir = await tempDir(t);
  const app = await startApp(t, testConfig({ state: { dir: stateDir }, targets: { postgres: [{ name: 'main', url: pg.url('app') }] } }));
  const submit = async (params: Record<string, unknown>) => {
    const response = await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.vacuum?wait=true', payload: { params } });
    t.equal(response.statusCode, 200, 'the run was answered');
    return runRecordSchema.parse(response.json());
  };
  const first = await submit({ target: 'main', database: 'app', freeze: true, analyze: false, minXidAge: 1000 });
  t.equal(first.status, 'success', first.error ?? first.reason ?? '');
  t.same(first.plan, [{ kind: 'sql', detail: 'VACUUM (FREEZE) "public"."old_events"' }]);
  const second = await submit({ target: 'main', database: 'app', freeze: true, minXidAge: 1000 });
  t.equal(second.status, 'skipped');
  t.equal(second.reason, 'condition cleared: no table has an xid age, not over the threshold 1000');
  const named = await submit({ target: 'main', database: 'app', table: 'new_events', freeze: true, minXidAge: 1000 });
  t.equal(named.status, 'skipped');
  t.match(named.reason, /^condition cleared: public\.new_events has xid age \d+, not over the threshold 1000$/);
});
