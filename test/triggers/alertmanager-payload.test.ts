import { readFile } from 'node:fs/promises';
import t from 'tap';
import { webhookPayloadSchema } from '../../src/triggers/alertmanager-payload.js';
import { captureWebhook, DEAD_TUPLES_ALERT } from '../fixtures/alertmanager-capture.js';

t.test('the committed fixture is what prometheus-alertmanager POSTs, bearer token included', async (t) => {
  const fixture = JSON.parse(await readFile(new URL('../fixtures/alertmanager-webhook.json', import.meta.url), 'utf8'));
  const post = await captureWebhook([DEAD_TUPLES_ALERT], 'capture-token');
  t.equal(post.headers.authorization, 'Bearer capture-token', 'http_config.authorization sends a bearer token');
  t.match(post.headers['user-agent'], /^Alertmanager\//);
  const live = JSON.parse(post.body);
  t.same(Object.keys(live).sort(), Object.keys(fixture).sort(), 'same top-level fields');
  t.same(Object.keys(live.alerts[0]).sort(), Object.keys(fixture.alerts[0]).sort(), 'same alert fields');
  t.same(live.alerts[0].labels, fixture.alerts[0].labels);
  t.equal(live.alerts[0].fingerprint, fixture.alerts[0].fingerprint, 'the fingerprint depends only on the labels');
  t.ok(webhookPayloadSchema.safeParse(live).success, 'the live payload passes the webhook schema');
  t.ok(webhookPayloadSchema.safeParse(fixture).success, 'and so does the fixture');
});
