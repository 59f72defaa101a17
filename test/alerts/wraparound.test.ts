import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { z } from 'zod';
import { parseThresholds } from '../../src/alerts/load.js';
import { renderRules } from '../../src/alerts/render.js';
import { ruleGroups } from '../../src/alerts/rules.js';
import { parseConfig } from '../../src/config/load.js';
import { waitFor } from '../../src/demo/servers/ports.js';
import { startPrometheus, type ActiveAlert } from '../../src/demo/servers/prometheus.js';
import { buildApp } from '../../src/server.js';
import { startTestPostgres } from '../actions/postgres-fixture.js';
import { capturedLogger, finishedRun, postWebhook, webhookPayload } from '../http/helpers.js';

/**
 * Acceptance 1 of issue 11, against a real PostgreSQL and a real Prometheus evaluating the rules
 * `upkeep rules` renders: a table whose relfrozenxid is far behind raises its database's
 * age(datfrozenxid); upkeep's wraparound series equal PostgreSQL's own age() and mxid_age();
 * PostgresWraparoundRisk fires; the alert's labels drive postgres.vacuum with freeze: true (the
 * rule examples/refnet.yml ships), and the ages fall.
 *
 * Bounded in time: autovacuum_freeze_max_age is lowered to its minimum (100000) and the rule's
 * ratio to 0.5, so 60000 transactions raise the age past the threshold while PostgreSQL's own
 * anti-wraparound autovacuum (at 100000) stays out of the way. `for:` is shortened to 2s.
 */
const XIDS = 60_000;
const FREEZE_RULE = {
  match: { alertname: 'PostgresWraparoundRisk' },
  remediation: 'postgres.vacuum',
  params: { target: '{{labels.target}}', database: '{{labels.database}}', freeze: true },
};

t.test('PostgresWraparoundRisk fires in a real Prometheus, and the alert-driven freeze lowers the age', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'upkeep-wraparound-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const server = await startTestPostgres(t, { autovacuum_freeze_max_age: '100000' });
  await server.query('create database app');
  await server.query('create table orders (id int primary key, payload text)', [], 'app');
  await server.query("insert into orders select g, 'x' from generate_series(1, 1000) g", [], 'app');
  // Transactions of their own (a procedure commits each), each given an xid by txid_current().
  await server.query('create procedure burn(n int) language plpgsql as $$ begin for i in 1..n loop perform txid_current(); commit; end loop; end $$', [], 'app');
  await server.query(`call burn(${XIDS})`, [], 'app');
  // Everything but orders is frozen, as a routine autovacuum would keep the catalogs: orders alone holds datfrozenxid back.
  const others = z.array(z.object({ name: z.string() })).parse(await server.query(
    "select oid::regclass::text as name from pg_class where relkind in ('r', 'm') and oid <> 'orders'::regclass", [], 'app'));
  for (const { name } of others) await server.query(`vacuum (freeze) ${name}`, [], 'app');

  const ages = async () => {
    const [row] = z.array(z.object({ xid: z.number(), mxid: z.number(), orders: z.number() })).parse(await server.query(
      "select age(datfrozenxid)::int as xid, mxid_age(datminmxid)::int as mxid, (select age(relfrozenxid)::int from pg_class where oid = 'orders'::regclass) as orders from pg_database where datname = 'app'", [], 'app'));
    if (!row) throw new Error('no app database');
    return row;
  };
  const before = await ages();
  t.ok(before.xid > XIDS, `age(datfrozenxid) ${before.xid}`);

  const parsed = parseConfig(JSON.stringify({
    state: { dir: join(root, 'state') },
    collectors: { disabled: ['disks', 'backups', 'logs', 'http', 'redis', 'docker'] },
    targets: { postgres: [{ name: 'main', url: server.url('app') }] },
    remediation: { cooldownSeconds: 0, rules: [FREEZE_RULE] },
  }), {});
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  const app = await buildApp({ config: parsed.config, log: capturedLogger('info').log });
  await app.fastify.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.fastify.close());
  const address = app.fastify.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');

  const thresholds = parseThresholds('postgres: { freezeMaxAgeRatio: 0.5 }\nfor: { PostgresWraparoundRisk: 2s }\n');
  if (!thresholds.ok) throw new Error(JSON.stringify(thresholds.errors));
  await writeFile(join(root, 'upkeep.rules.yml'), renderRules(ruleGroups(thresholds.thresholds), thresholds.thresholds));
  const prometheus = await startPrometheus({ scrapeTarget: `127.0.0.1:${address.port}`, ruleFiles: [join(root, 'upkeep.rules.yml')], intervalSeconds: 1 });
  t.teardown(() => prometheus.destroy());

  const alert = await waitFor('PostgresWraparoundRisk to fire for app', async (): Promise<ActiveAlert> => {
    const found = (await prometheus.alerts()).find((candidate) => candidate.labels.alertname === 'PostgresWraparoundRisk' && candidate.labels.database === 'app');
    if (found?.state !== 'firing') throw new Error(found ? found.state : 'inactive');
    return found;
  }, 90_000, 250);
  t.match(alert.labels, { target: 'main', database: 'app', severity: String });

  // upkeep's series, as Prometheus scraped them, equal PostgreSQL's own ages (no transaction ran since).
  const value = async (expr: string) => Number((await prometheus.query(expr))[0]?.value[1]);
  t.equal(await value('upkeep_postgres_xid_age{database="app"}'), (await ages()).xid, 'xid_age is age(datfrozenxid)');
  t.equal(await value('upkeep_postgres_mxid_age{database="app"}'), (await ages()).mxid, 'mxid_age is mxid_age(datminmxid)');
  t.equal(await value('upkeep_postgres_freeze_max_age'), 100_000);
  t.equal(await value('upkeep_postgres_table_xid_age{database="app",table="orders"}'), (await ages()).orders, 'table_xid_age is age(relfrozenxid)');

  // The firing alert, as Alertmanager would deliver it, drives the freeze.
  const reply = await postWebhook(app, await webhookPayload({ labels: { ...alert.labels, schema: '', table: '' }, fingerprint: '00000000000000fe' }));
  t.equal(reply.statusCode, 202);
  const run = await finishedRun(app, reply.body?.accepted[0]?.runId ?? '');
  t.equal(run.status, 'success', run.error ?? run.reason ?? '');
  t.same(run.plan?.map((step) => step.detail), ['VACUUM (FREEZE, ANALYZE) "public"."orders"']);
  t.match(run.verification?.detail, /^public\.orders: xid age \d+ -> \d+$/);
  const after = await ages();
  t.ok(after.orders < 100, `orders' age(relfrozenxid) fell from ${before.orders} to ${after.orders}`);
  t.ok(after.xid < 100, `the database's age(datfrozenxid) fell from ${before.xid} to ${after.xid}`);
  await waitFor('the scraped age to fall', async () => {
    if (await value('upkeep_postgres_xid_age{database="app"}') >= 100) throw new Error('not yet');
  }, 30_000, 250);
});
