import t from 'tap';
import { promtoolCheckMetrics } from '../fixtures/promtool.js';
import { startTestPostgres, tableWithDeadTuples } from '../actions/postgres-fixture.js';
import { finishedRun, postWebhook, startApp, tempDir, testConfig, VACUUM_RULE, webhookPayload } from './helpers.js';


t.test('the remediation metrics pass promtool check metrics, before and after runs', async (t) => {
  const pg = await startTestPostgres(t);
  await pg.query('create database app');
  await tableWithDeadTuples(pg, 'app', 'orders');
  const app = await startApp(t, testConfig({
    state: { dir: await tempDir(t) },
    targets: { postgres: [{ name: 'main', url: pg.url('app') }] },
    remediation: { rules: [VACUUM_RULE] },
  }));
  const scrape = async () => (await app.fastify.inject({ method: 'GET', url: '/metrics' })).body;
  const empty = await scrape();
  t.match(empty, /^upkeep_remediation_runs_total\{remediation="postgres\.retention",outcome="dry_run"\} 0$/m, 'every series exists from the start');
  t.match(empty, /^upkeep_remediation_running\{remediation="postgres\.vacuum"\} 0$/m);
  t.same(await promtoolCheckMetrics(empty), { code: 0, output: '' });

  t.equal((await finishedRun(app, (await postWebhook(app, await webhookPayload())).body?.accepted[0]?.runId ?? '')).status, 'success');
  await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.analyze?wait=true', payload: { params: { target: 'main', database: 'app', table: 'nope' } } });
  const text = await scrape();
  t.match(text, /^upkeep_remediation_runs_total\{remediation="postgres\.vacuum",outcome="success"\} 1$/m);
  t.match(text, /^upkeep_remediation_runs_total\{remediation="postgres\.analyze",outcome="rejected"\} 1$/m, 'a rejected run has its own outcome');
  t.match(text, /^upkeep_remediation_runs_total\{remediation="postgres\.analyze",outcome="skipped"\} 0$/m, 'not skipped');
  t.match(empty, /^upkeep_remediation_runs_total\{remediation="postgres\.vacuum",outcome="rejected"\} 0$/m, 'the rejected series exists from the start');
  t.match(text, /^upkeep_remediation_duration_seconds_bucket\{le="\+Inf",remediation="postgres\.vacuum"\} 1$/m);
  t.match(text, /^upkeep_remediation_last_success_timestamp_seconds\{remediation="postgres\.vacuum"\} \d+(\.\d+)?$/m);
  t.same(await promtoolCheckMetrics(text), { code: 0, output: '' });
});
