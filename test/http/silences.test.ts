import pg from 'pg';
import t from 'tap';
import { AlertSilences } from '../../src/engine/silences.js';
import { ordersAndAlertmanager, silenceIn } from '../fixtures/alertmanager.js';
import { DEAD_TUPLES_ALERT } from '../fixtures/alertmanager-capture.js';
import { freePort, waitFor } from '../fixtures/ports.js';
import { holdTable } from '../actions/postgres-fixture.js';
import { capturedLogger, finishedRun, postWebhook, startApp, tempDir, testConfig, VACUUM_RULE, webhookPayload } from './helpers.js';

const TOKEN = 'am-webhook-token-4d1c';

t.test('a real Alertmanager: its webhook triggers the run, and the alert is silenced while the run goes on', async (t) => {
  const port = await freePort();
  const { server, alertmanager } = await ordersAndAlertmanager(t, { webhookUrl: `http://127.0.0.1:${port}/alertmanager`, token: TOKEN });
  const app = await startApp(t, testConfig({
    server: { authToken: TOKEN },
    state: { dir: await tempDir(t) },
    alertmanager: { url: alertmanager.url },
    targets: { postgres: [{ name: 'main', url: server.url('app') }] },
    remediation: { rules: [VACUUM_RULE], lockTimeoutSeconds: 600 },
  }));
  await app.fastify.listen({ host: '127.0.0.1', port });

  const locker = new pg.Client({ connectionString: server.url('app') });
  await locker.connect();
  await locker.query('begin; lock table orders in access exclusive mode');
  t.teardown(async () => { await locker.query('commit').catch(() => undefined); await locker.end(); });

  await alertmanager.postAlerts([DEAD_TUPLES_ALERT]);
  const runId = await waitFor('the webhook run', async () => {
    const [run] = (await app.fastify.inject({ method: 'GET', url: '/runs?trigger=alert' })).json().runs;
    if (!run) throw new Error('no run yet');
    return run.id as string;
  });
  const active = await waitFor('an active silence', async () => {
    const silences = (await alertmanager.silences()).filter((silence) => silence.status.state === 'active');
    if (silences.length !== 1) throw new Error(`${silences.length} active silences`);
    return silences[0]!;
  });
  t.match(active.comment, new RegExp(`run ${runId}`));
  t.same(Object.fromEntries(active.matchers.map((matcher) => [matcher.name, matcher.value])), DEAD_TUPLES_ALERT.labels, 'the silence matches exactly the alert');

  await locker.query('commit');
  const run = await finishedRun(app, runId);
  t.equal(run.status, 'success');
  t.equal(run.silenceId, active.id);
  const [after] = (await alertmanager.silences()).filter((silence) => silence.id === active.id);
  t.equal(after?.status.state, 'expired', 'the silence is expired when the run ends');
});

t.test('the silence is expired at once when the run fails; a down Alertmanager does not stop the run', async (t) => {
  const { server, alertmanager } = await ordersAndAlertmanager(t);
  const base = { targets: { postgres: [{ name: 'main', url: server.url('app') }] }, remediation: { rules: [VACUUM_RULE], lockTimeoutSeconds: 1 } };
  const app = await startApp(t, testConfig({ ...base, state: { dir: await tempDir(t) }, alertmanager: { url: alertmanager.url } }));
  const locker = new pg.Client({ connectionString: server.url('app') });
  await locker.connect();
  await locker.query('begin; lock table orders in access exclusive mode');
  t.teardown(async () => { await locker.query('commit').catch(() => undefined); await locker.end(); });

  const failed = await finishedRun(app, (await postWebhook(app, await webhookPayload())).body?.accepted[0]?.runId ?? '');
  t.equal(failed.status, 'failure');
  const [silence] = (await alertmanager.silences()).filter((candidate) => candidate.id === failed.silenceId);
  t.equal(silence?.status.state, 'expired');
  await locker.query('commit');

  const captured = capturedLogger('warn');
  const downPort = await freePort();
  const down = await startApp(t, testConfig({ ...base, state: { dir: await tempDir(t) }, alertmanager: { url: `http://127.0.0.1:${downPort}/` } }), captured.log);
  const ran = await finishedRun(down, (await postWebhook(down, await webhookPayload({ fingerprint: 'other' }))).body?.accepted[0]?.runId ?? '');
  t.equal(ran.status, 'success');
  t.notOk(ran.silenceId);
  t.match(captured.text(), /could not create a silence/);
});

t.test('Alertmanager away when the run ends: the silence is expired once it is back, not left to hide the alert', async (t) => {
  const { server, alertmanager } = await ordersAndAlertmanager(t);
  const captured = capturedLogger('info');
  const app = await startApp(t, testConfig({
    state: { dir: await tempDir(t) }, alertmanager: { url: alertmanager.url },
    targets: { postgres: [{ name: 'main', url: server.url('app') }] }, remediation: { rules: [VACUUM_RULE], lockTimeoutSeconds: 600 },
  }), captured.log);
  const release = await holdTable(t, server, 'app', 'orders');

  const runId = (await postWebhook(app, await webhookPayload())).body?.accepted[0]?.runId ?? '';
  const silenceId = await silenceIn(alertmanager, 'active');
  await alertmanager.stop();
  await release();
  t.equal((await finishedRun(app, runId)).status, 'success');
  await alertmanager.start();
  await silenceIn(alertmanager, 'expired', silenceId);
  const lines = captured.lines().filter((line) => line.silenceId === silenceId).map((line) => [line.level, line.msg]);
  t.same(lines, [[30, 'alert silenced while the remediation runs'], [40, 'could not expire the silence; trying again until it would end by itself'], [30, 'silence expired']]);

  // A silence Alertmanager no longer has (restarted without its storage: a 500, "silence not
  // found") is nothing to expire: no warning, and no retries for a day.
  const unknown = capturedLogger('info');
  await new AlertSilences(alertmanager.url).release('00000000-0000-0000-0000-000000000000', unknown.log);
  t.same(unknown.lines(), []);
});
