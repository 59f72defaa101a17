import t from 'tap';
import { z } from 'zod';
import { alertCount, jsonLongerThan, labelProblem } from '../../src/http/limits.js';
import { buildApp, type App } from '../../src/server.js';
import { waitFor } from '../fixtures/ports.js';
import { gatedAction } from '../engine/gated-action.js';
import { capturedLogger, postWebhook, tempDir, testConfig, webhookPayload } from './helpers.js';

const runsReply = z.object({ runs: z.array(z.object({ id: z.string(), status: z.string(), params: z.record(z.string(), z.unknown()) })) });
const errorReply = z.object({ error: z.string() });

async function runs(app: App) {
  return runsReply.parse((await app.fastify.inject({ method: 'GET', url: '/runs?limit=1000' })).json()).runs;
}

function manual(app: App, body: unknown, url = '/remediations/test.gated') {
  return app.fastify.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) });
}

const SMALL = { maxAlertsPerWebhook: 3, maxLabels: 8, maxLabelNameBytes: 16, maxLabelValueBytes: 32, maxParams: 2, maxParamNameBytes: 8, maxParamValueBytes: 16 };

t.test('size limits: each one is a 4xx that names its config key, and nothing is queued', async (t) => {
  const captured = capturedLogger('info');
  const { action } = gatedAction();
  const config = testConfig({
    state: { dir: await tempDir(t) }, server: SMALL,
    remediation: { maxTimeoutSeconds: 600, timeoutSeconds: 60, rules: [{ match: { alertname: 'PostgresDeadTuplesHigh' }, remediation: 'test.gated', params: { n: '1' } }] },
  });
  const app = await buildApp({ config, log: captured.log, collectors: [], actions: [action] });
  t.teardown(() => app.fastify.close());
  const base = await webhookPayload();
  const [alert] = z.object({ alerts: z.array(z.record(z.string(), z.unknown())) }).parse(base).alerts;
  const withAlerts = (count: number) => ({ ...base, alerts: Array.from({ length: count }, (_, index) => ({ ...alert, fingerprint: `fp-${index}` })) });
  const labelsOf = (labels: Record<string, string>) => ({ ...base, commonLabels: undefined, groupLabels: undefined, alerts: [{ ...alert, labels: { alertname: 'PostgresDeadTuplesHigh', ...labels } }] });

  const tooMany = await postWebhook(app, withAlerts(4));
  t.equal(tooMany.statusCode, 413);
  t.same(JSON.parse(tooMany.raw), { error: "4 alerts in one payload, at most 3 (server.maxAlertsPerWebhook); set max_alerts in Alertmanager's webhook_config" });

  const cases: [string, unknown, string][] = [
    ['too many labels', labelsOf(Object.fromEntries(Array.from({ length: 8 }, (_, index) => [`l${index}`, 'v']))), 'invalid body: alerts.0.labels: 9 labels, at most 8 (server.maxLabels)'],
    ['a long label name', labelsOf({ ['n'.repeat(17)]: 'v' }), 'invalid body: alerts.0.labels: a label name of 17 bytes, at most 16 (server.maxLabelNameBytes)'],
    ['a long label value, counted in bytes', labelsOf({ table: 'é'.repeat(17) }), 'invalid body: alerts.0.labels: label "table" is 34 bytes, at most 32 (server.maxLabelValueBytes)'],
    ['long commonLabels', { ...base, commonLabels: { alertname: 'x'.repeat(33) } }, 'invalid body: commonLabels: label "alertname" is 33 bytes, at most 32 (server.maxLabelValueBytes)'],
  ];
  for (const [what, payload, error] of cases) {
    const reply = await postWebhook(app, payload);
    t.equal(reply.statusCode, 400, what);
    t.same(JSON.parse(reply.raw), { error }, what);
  }

  const manualCases: [string, unknown, string][] = [
    ['too many params', { params: { n: 1, a: 1, b: 1 } }, 'invalid body: params: 3 params, at most 2 (server.maxParams)'],
    ['a long param name', { params: { ['k'.repeat(9)]: 1 } }, 'invalid body: params: a param name of 9 bytes, at most 8 (server.maxParamNameBytes)'],
    ['a long param value, as JSON', { params: { n: 'x'.repeat(15) } }, 'invalid body: params: param "n" is over 16 bytes as JSON (server.maxParamValueBytes)'],
    ['a nested param value', { params: { n: { deep: [1, 2, 3, 4, 5] } } }, 'invalid body: params: param "n" is over 16 bytes as JSON (server.maxParamValueBytes)'],
    ['timeoutSeconds over the maximum', { params: { n: 1 }, timeoutSeconds: 601 }, 'invalid body: timeoutSeconds: must be at most 600 (remediation.maxTimeoutSeconds)'],
    ['timeoutSeconds under a second', { params: { n: 1 }, timeoutSeconds: 0.001 }, 'invalid body: timeoutSeconds: must be at least 1'],
    ['a timeout Node cannot hold', { params: { n: 1 }, timeoutSeconds: 2 ** 31 }, 'invalid body: timeoutSeconds: must be at most 600 (remediation.maxTimeoutSeconds)'],
  ];
  for (const [what, body, error] of manualCases) {
    const reply = await manual(app, body);
    t.equal(reply.statusCode, 400, what);
    t.same(errorReply.parse(reply.json()), { error }, what);
  }
  // Deeper than JSON.stringify can recurse: still a plain 400.
  const deep = await app.fastify.inject({ method: 'POST', url: '/remediations/test.gated', headers: { 'content-type': 'application/json' }, payload: `{"params":{"n":${'['.repeat(50_000)}${']'.repeat(50_000)}}}` });
  t.equal(deep.statusCode, 400);
  t.same(deep.json(), { error: 'invalid body: params: param "n" is over 16 bytes as JSON (server.maxParamValueBytes)' });
  t.same(await runs(app), [], 'no refused request queued anything');

  // At the limits exactly, everything is accepted.
  const atLimit = await postWebhook(app, { ...withAlerts(3), commonLabels: { alertname: 'x'.repeat(32) } });
  t.equal(atLimit.statusCode, 202);
  t.equal(atLimit.body?.accepted.length, 3);
  const atParamLimit = await manual(app, { params: { n: 'x'.repeat(14), abcdefgh: 1 }, timeoutSeconds: 600 });
  t.equal(atParamLimit.statusCode, 400, 'within the size limits, the action still validates its params');
  t.match(errorReply.parse(atParamLimit.json()).error, /^invalid params: /);
  t.equal((await manual(app, { params: { n: 7 }, timeoutSeconds: 600 })).statusCode, 202);
  t.equal((await runs(app)).length, 4);

  const lines = captured.text().split('\n').filter((line) => line.includes('"msg":"request"')).map((line) => {
    const { method, path, status } = z.object({ method: z.string(), path: z.string(), status: z.number() }).parse(JSON.parse(line));
    return `${method} ${path} ${status}`;
  });
  t.same(lines, [
    'POST /alertmanager 413', ...Array<string>(4).fill('POST /alertmanager 400'), ...Array<string>(8).fill('POST /remediations/test.gated 400'),
    'GET /runs?limit=*** 200', 'POST /alertmanager 202', 'POST /remediations/test.gated 400', 'POST /remediations/test.gated 202', 'GET /runs?limit=*** 200',
  ]);
});

t.test('remediation.maxQueued: a webhook is queued whole or refused whole (429, Retry-After); so is a manual run', async (t) => {
  const { action, open } = gatedAction();
  const config = testConfig({
    state: { dir: await tempDir(t) },
    remediation: { concurrency: 1, maxQueued: 2, rules: [{ match: { alertname: 'PostgresDeadTuplesHigh' }, remediation: 'test.gated', params: { n: '{{labels.n}}' } }] },
  });
  const app = await buildApp({ config, log: capturedLogger('info').log, collectors: [], actions: [action] });
  t.teardown(async () => { open(); await app.fastify.close(); });
  const payload = async (...ns: number[]) => {
    const alerts = await Promise.all(ns.map(async (n) => z.object({ alerts: z.array(z.unknown()) }).parse(await webhookPayload({ fingerprint: `fp-${n}`, labels: { n: String(n) } })).alerts[0]));
    return { ...await webhookPayload(), alerts };
  };

  const never = await postWebhook(app, await payload(1, 2, 3));
  t.equal(never.statusCode, 413, 'a payload that can never fit is too large, not "retry later"');
  t.same(JSON.parse(never.raw), { error: "this payload asks for 3 runs, more than the queue holds: 2 (remediation.maxQueued); set max_alerts in Alertmanager's webhook_config" });

  const first = await postWebhook(app, await payload(1, 2));
  t.equal(first.statusCode, 202);
  const [running] = first.body?.accepted ?? [];
  // The first run starts (and blocks); the second waits in the queue, which has room for one more.
  await waitFor('the first run to start', async () => {
    const record = (await runs(app)).find((run) => run.id === running?.runId);
    if (record?.status !== 'running') throw new Error(`still ${record?.status}`);
  });

  const refused = await app.fastify.inject({ method: 'POST', url: '/alertmanager', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(await payload(3, 4)) });
  t.equal(refused.statusCode, 429, 'two runs do not fit in a room of one: the whole payload is refused');
  t.equal(refused.headers['retry-after'], '5');
  t.same(refused.json(), { error: 'the run queue is full: at most 2 runs may wait (remediation.maxQueued); retry later' });
  t.equal((await runs(app)).length, 2, 'nothing of the refused payload was journalled');

  t.equal((await manual(app, { params: { n: 5 } })).statusCode, 202, 'one manual run fits');
  const full = await manual(app, { params: { n: 6 } });
  t.equal(full.statusCode, 429);
  t.equal(full.headers['retry-after'], '5');
  t.same(full.json(), { error: 'the run queue is full: at most 2 runs may wait (remediation.maxQueued); retry later' });

  open();
  await waitFor('the queue to drain', async () => {
    const statuses = (await runs(app)).map((run) => run.status);
    if (statuses.some((status) => status !== 'success')) throw new Error(statuses.join(','));
  });
  const again = await postWebhook(app, await payload(3, 4));
  t.equal(again.statusCode, 202, 'the refused payload is accepted whole when sent again');
  t.same(again.body?.accepted.map((run) => run.status), ['queued', 'queued']);
  t.equal((await runs(app)).length, 5);
});

t.test('jsonLongerThan agrees with JSON.stringify, byte for byte', async (t) => {
  const values: unknown[] = [null, true, 0, -1.5e-7, 'é"\\\n', '🧹', [], {}, [1, [2, [3]], { a: null }], { 'k"ey': ['x', { y: 'ü' }], z: 12 }];
  for (const value of values) {
    const length = Buffer.byteLength(JSON.stringify(value));
    t.equal(jsonLongerThan(value, length), false, `${JSON.stringify(value)} fits in ${length} bytes`);
    t.equal(jsonLongerThan(value, length - 1), true, `${JSON.stringify(value)} does not fit in ${length - 1}`);
  }
});

t.test('labelProblem counts labels first, then checks each name and value', async (t) => {
  const limits = testConfig({ server: SMALL }).server;
  t.equal(labelProblem({ alertname: 'A' }, limits), null);
  t.equal(labelProblem({ ['ü'.repeat(9)]: 'v' }, limits), 'a label name of 18 bytes, at most 16 (server.maxLabelNameBytes)');
});

t.test('alertCount reads the alerts of anything that parsed as JSON', async (t) => {
  t.equal(alertCount(null), 0);
  t.equal(alertCount('4'), 0);
  t.equal(alertCount([{ alerts: [1] }]), 0);
  t.equal(alertCount({ alerts: 'many' }), 0);
  t.equal(alertCount({ alerts: [1, 2, 3] }), 3);
});
