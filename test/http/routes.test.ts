import { join } from 'node:path';
import pg from 'pg';
import t from 'tap';
import { waitFor } from '../fixtures/ports.js';
import { startTestPostgres, tableWithDeadTuples } from '../actions/postgres-fixture.js';
import { finishedRun, postWebhook, startApp, tempDir, testConfig, VACUUM_RULE, webhookPayload, startMainApp } from './helpers.js';

t.test('GET /remediations describes each remediation with its risk and parameter schema', async (t) => {
  const app = await startApp(t, testConfig({ state: { dir: await tempDir(t) } }));
  const response = await app.fastify.inject({ method: 'GET', url: '/remediations' });
  t.equal(response.statusCode, 200);
  const vacuum = response.json().remediations.find((entry: { name: string }) => entry.name === 'postgres.vacuum');
  t.match(vacuum, { risk: /safe; full: true is disruptive/, description: /VACUUM/ });
  t.same(vacuum.params.required, ['target', 'database']);
  t.ok(vacuum.params.properties.table, 'table is described');
  const names = response.json().remediations.map((entry: { name: string }) => entry.name);
  t.ok(['postgres.vacuum', 'postgres.analyze', 'postgres.reindex', 'postgres.retention'].every((name) => names.includes(name)));
});

t.test('malformed input gets a 4xx naming the problem, and nothing runs', async (t) => {
  const app = await startApp(t, testConfig({ state: { dir: await tempDir(t) }, remediation: { rules: [VACUUM_RULE] } }));
  const post = (url: string, payload: string) => app.fastify.inject({ method: 'POST', url, payload, headers: { 'content-type': 'application/json' } });

  const unknown = await post('/remediations/postgres.nope', '{}');
  t.equal(unknown.statusCode, 404);
  t.match(unknown.json().error, /unknown remediation "postgres.nope"/);
  const badParams = await post('/remediations/postgres.vacuum', JSON.stringify({ params: { target: 'main', full: 'maybe' } }));
  t.equal(badParams.statusCode, 400);
  t.match(badParams.json().error, /invalid params: database: .*full: /);
  const extraKey = await post('/remediations/postgres.vacuum', JSON.stringify({ params: {}, force: true }));
  t.equal(extraKey.statusCode, 400);
  t.match(extraKey.json().error, /invalid body: .*force/);
  const notJson = await post('/alertmanager', '{"version":');
  t.equal(notJson.statusCode, 400);
  const oldVersion = await post('/alertmanager', JSON.stringify({ ...(await webhookPayload()), version: '3' }));
  t.equal(oldVersion.statusCode, 400);
  t.match(oldVersion.json().error, /invalid body: version/);
  const payload = await webhookPayload();
  const noFingerprint = await post('/alertmanager', JSON.stringify({ ...payload, alerts: [{ status: 'firing', labels: { alertname: 'X' }, startsAt: 'now' }] }));
  t.equal(noFingerprint.statusCode, 400);
  t.match(noFingerprint.json().error, /alerts\.0\.fingerprint/);
  // Fastify's own refusals, in the same shape as upkeep's.
  const wrongType = await app.fastify.inject({ method: 'POST', url: '/alertmanager', payload: 'x=1', headers: { 'content-type': 'text/plain' } });
  t.same([wrongType.statusCode, wrongType.json()], [415, { error: 'the body has content type "text/plain"; send JSON with Content-Type: application/json' }]);
  const noType = await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.vacuum', payload: Buffer.from('{}') });
  t.same([noType.statusCode, noType.json()], [415, { error: 'the body has no content type; send JSON with Content-Type: application/json' }]);
  // No body at all is an absent body (its default, no params), not "expected object, received null".
  const noBody = await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.vacuum' });
  t.same([noBody.statusCode, noBody.json()], [400, { error: 'invalid params: target: Invalid input: expected string, received undefined; database: Invalid input: expected string, received undefined' }]);
  const noRoute = await app.fastify.inject({ method: 'DELETE', url: '/runs?token=secret-in-query' });
  t.same([noRoute.statusCode, noRoute.json()], [404, { error: 'no route DELETE /runs' }], 'the query is not echoed');
  t.same((await app.fastify.inject({ method: 'GET', url: '/runs' })).json().runs, [], 'nothing was queued');

  const missingLabel = await postWebhook(app, await webhookPayload({ labels: { alertname: 'PostgresDeadTuplesHigh', schema: '' } }));
  t.equal(missingLabel.statusCode, 202);
  const noTarget = await postWebhook(app, { ...payload, alerts: [{ ...(payload.alerts as object[])[0], labels: { alertname: 'PostgresDeadTuplesHigh' } }] });
  t.match(noTarget.body?.ignored[0]?.reason, /rule remediation\.rules\[0\]: param "target" needs label "target"/);
});

t.test('GET /runs filters the journal; GET /runs/:id finds one run', async (t) => {
  const gone = join(await tempDir(t), 'gone');
  const app = await startApp(t, testConfig({ state: { dir: await tempDir(t) }, targets: { files: [{ name: 'tmp', dir: gone }], logs: [{ name: 'app', dir: gone }] } }));
  const submit = (remediation: string, params: Record<string, unknown>) => app.fastify.inject({ method: 'POST', url: `/remediations/${remediation}?wait=true`, payload: { params, dryRun: true } });
  // Refused by the config alone: a 400, and nothing is journalled.
  const screened = await submit('postgres.vacuum', { target: 'nowhere', database: 'app' });
  t.equal(screened.statusCode, 400);
  t.same(screened.json(), { error: 'unknown postgres target "nowhere"' });
  // Refused once the run looks at the system: journalled as rejected.
  const first = (await submit('files.cleanup', { name: 'tmp' })).json();
  t.equal(first.status, 'rejected');
  t.match(first.reason, /^tmp: cannot use .*gone: ENOENT/);
  const second = (await submit('logs.rotate', { name: 'app' })).json();

  const all = (await app.fastify.inject({ method: 'GET', url: '/runs' })).json().runs;
  t.same(all.map((run: { id: string }) => run.id), [second.id, first.id], 'newest first');
  const cleanups = (await app.fastify.inject({ method: 'GET', url: '/runs?remediation=files.cleanup&status=rejected&trigger=manual' })).json().runs;
  t.same(cleanups.map((run: { id: string }) => run.id), [first.id]);
  t.same((await app.fastify.inject({ method: 'GET', url: '/runs?trigger=alert' })).json().runs, []);
  t.equal((await app.fastify.inject({ method: 'GET', url: '/runs?limit=1' })).json().runs.length, 1);
  t.equal((await app.fastify.inject({ method: 'GET', url: '/runs?status=bogus' })).statusCode, 400);
  const page = (await app.fastify.inject({ method: 'GET', url: '/runs?limit=1' })).json();
  t.same(page.runs.map((run: { id: string }) => run.id), [second.id]);
  const rest = (await app.fastify.inject({ method: 'GET', url: `/runs?limit=1&cursor=${page.next}` })).json();
  t.same([rest.runs.map((run: { id: string }) => run.id), rest.next], [[first.id], null], 'the cursor carries on, to the end');
  const badCursor = await app.fastify.inject({ method: 'GET', url: '/runs?cursor=nope!' });
  t.same([badCursor.statusCode, badCursor.json()], [400, { error: 'invalid cursor: pass back the "next" value of a previous GET /runs reply unchanged' }]);
  t.match((await app.fastify.inject({ method: 'GET', url: '/runs?limit=1001' })).json(), { error: /^invalid querystring: limit: / });
  for (const [url, name] of [['/runs?status=success&status=failure', 'status'], ['/runs?limit=5&limit=6', 'limit'], ['/runs?cursor=a&trigger=alert&cursor=b', 'cursor']] as const) {
    const twice = await app.fastify.inject({ method: 'GET', url });
    t.same([twice.statusCode, twice.json()], [400, { error: `invalid querystring: "${name}" is given more than once; give it once` }], url);
  }
  const waits = await app.fastify.inject({ method: 'POST', url: '/remediations/files.cleanup?wait=true&wait=false', payload: { params: { name: 'tmp' } } });
  t.same([waits.statusCode, waits.json()], [400, { error: 'invalid querystring: "wait" is given more than once; give it once' }]);
  t.equal((await app.fastify.inject({ method: 'GET', url: '/runs' })).json().runs.length, 2, 'and nothing ran');
  const smallPages = await startApp(t, testConfig({ state: { dir: await tempDir(t) }, server: { runsPageLimit: 5 } }));
  t.equal((await smallPages.fastify.inject({ method: 'GET', url: '/runs?limit=6' })).statusCode, 400, 'server.runsPageLimit is the largest limit');
  t.equal((await app.fastify.inject({ method: 'GET', url: `/runs/${first.id}` })).json().id, first.id);
  const missing = await app.fastify.inject({ method: 'GET', url: '/runs/nope' });
  t.equal(missing.statusCode, 404);
  t.same(missing.json(), { error: 'no run with id "nope"' });
  const accepted = await app.fastify.inject({ method: 'POST', url: '/remediations/files.cleanup', payload: { params: { name: 'tmp' } } });
  t.equal(accepted.statusCode, 202);
  t.equal((await finishedRun(app, accepted.json().runId)).status, 'rejected');
});

t.test('a resolved alert cancels its queued runs', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await tableWithDeadTuples(server, 'app', 'orders');
  await tableWithDeadTuples(server, 'app', 'customers');
  const app = await startMainApp(t, server, {
    remediation: { rules: [VACUUM_RULE], concurrency: 1, lockTimeoutSeconds: 600 },
  });
  const locker = new pg.Client({ connectionString: server.url('app') });
  await locker.connect();
  await locker.query('begin; lock table orders in access exclusive mode');
  t.teardown(async () => { await locker.query('commit').catch(() => undefined); await locker.end(); });

  const busy = await postWebhook(app, await webhookPayload({ fingerprint: 'orders1' }));
  await waitFor('the orders VACUUM to hold the only slot', async () => {
    const waiting = await server.query("select pid from pg_stat_activity where application_name like 'upkeep:%' and query like 'VACUUM%'");
    if (waiting.length !== 1) throw new Error('not yet');
  });
  const queued = await postWebhook(app, await webhookPayload({ fingerprint: 'customers1', labels: { table: 'customers' } }));
  t.equal(queued.body?.accepted[0]?.status, 'queued');
  const resolved = await postWebhook(app, await webhookPayload({ fingerprint: 'customers1', labels: { table: 'customers' }, status: 'resolved' }));
  t.equal(resolved.statusCode, 202);
  t.same(resolved.body?.accepted, []);
  t.match(resolved.body?.ignored[0]?.reason, /resolved: cancelled 1 queued run/);
  const cancelled = await finishedRun(app, queued.body?.accepted[0]?.runId ?? '');
  t.equal(cancelled.status, 'cancelled');
  t.equal(cancelled.reason, 'alert resolved before the run started');

  await locker.query('commit');
  t.equal((await finishedRun(app, busy.body?.accepted[0]?.runId ?? '')).status, 'success');
  const metrics = (await app.fastify.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(metrics, /upkeep_alerts_received_total\{status="resolved"\} 1/);
  t.match(metrics, /upkeep_remediation_runs_total\{remediation="postgres\.vacuum",outcome="skipped"\} 1/);
  t.match(metrics, /upkeep_remediation_last_success_timestamp_seconds\{remediation="postgres\.vacuum"\} \d+/);
  t.match(metrics, /upkeep_remediation_duration_seconds_count\{remediation="postgres\.vacuum"\} 1/);
});
