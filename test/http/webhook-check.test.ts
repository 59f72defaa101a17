import { readFile } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import t from 'tap';
import { z } from 'zod';
import { checkWebhookLabels } from '../../src/http/limits.js';
import { plainWebhookPayload } from '../../src/http/webhook-check.js';
import { webhookPayloadSchema } from '../../src/triggers/alertmanager-payload.js';
import { mutateWebhook, seeded } from '../product/fuzz-mutations.js';
import { testConfig } from './helpers.js';

const PAYLOADS = 1500;

t.test('the check without zod takes only what zod takes, and gives back exactly what zod does', async (t) => {
  const fixture = z.record(z.string(), z.unknown()).parse(JSON.parse(await readFile(new URL('../fixtures/alertmanager-webhook.json', import.meta.url), 'utf8')));
  for (const [name, server] of [['default limits', {}], ['small limits', { maxLabels: 8, maxLabelNameBytes: 16, maxLabelValueBytes: 32 }]] as const) {
    const limits = testConfig({ server }).server;
    const schema = webhookPayloadSchema.superRefine(checkWebhookLabels(limits));
    const random = seeded(20261203);
    const tally = { zodTook: 0, plainTook: 0, differed: [] as string[], missed: [] as string[] };
    for (let index = 0; index < PAYLOADS; index += 1) {
      const request = mutateWebhook(random, fixture, `fp-${index}`);
      let data: unknown;
      try {
        data = JSON.parse(request.body);
      } catch {
        continue;
      }
      const parsed = schema.safeParse(data);
      const plain = plainWebhookPayload(data, limits);
      if (parsed.success) tally.zodTook += 1;
      if (plain === undefined) {
        // What it leaves to zod: a `__proto__` label key, which zod's copy drops.
        if (parsed.success && !request.body.includes('__proto__')) tally.missed.push(request.what);
        continue;
      }
      tally.plainTook += 1;
      if (!parsed.success || !isDeepStrictEqual(plain, parsed.data)) tally.differed.push(request.what);
    }
    t.same(tally.differed, [], `${name}: every payload it takes, zod takes, with the same result`);
    t.same(tally.missed, [], `${name}: it takes every payload zod takes but those with a __proto__ key`);
    t.ok(tally.plainTook > PAYLOADS / 4, `${name}: ${tally.plainTook} of ${PAYLOADS} taken without zod (zod: ${tally.zodTook})`);
  }
});

t.test('each field zod checks, the check without zod checks', async (t) => {
  const limits = testConfig({}).server;
  const alert = { status: 'firing', labels: { alertname: 'A' }, startsAt: '2026-12-03T00:00:00Z', fingerprint: 'f' };
  const payload = { version: '4', status: 'firing', alerts: [alert] };
  t.same(plainWebhookPayload(payload, limits), { version: '4', status: 'firing', alerts: [{ ...alert, annotations: {} }] }, 'annotations default to {}');
  const refused: [string, unknown][] = [
    ['not an object', [payload]],
    ['version 3', { ...payload, version: '3' }],
    ['a status of its own', { ...payload, status: 'pending' }],
    ['truncatedAlerts negative', { ...payload, truncatedAlerts: -1 }],
    ['truncatedAlerts not whole', { ...payload, truncatedAlerts: 1.5 }],
    ['groupKey a number', { ...payload, groupKey: 1 }],
    ['commonLabels with a number', { ...payload, commonLabels: { a: 1 } }],
    ['alerts not a list', { ...payload, alerts: {} }],
    ['an alert without alertname', { ...payload, alerts: [{ ...alert, labels: { table: 't' } }] }],
    ['an empty fingerprint', { ...payload, alerts: [{ ...alert, fingerprint: '' }] }],
    ['an empty startsAt', { ...payload, alerts: [{ ...alert, startsAt: '' }] }],
    ['endsAt null', { ...payload, alerts: [{ ...alert, endsAt: null }] }],
    ['annotations a list', { ...payload, alerts: [{ ...alert, annotations: [] }] }],
    ['a label value over the limit', { ...payload, alerts: [{ ...alert, labels: { alertname: 'x'.repeat(limits.maxLabelValueBytes + 1) } }] }],
    ['groupLabels over the limit', { ...payload, groupLabels: { ['n'.repeat(limits.maxLabelNameBytes + 1)]: 'v' } }],
    ['a __proto__ label', { ...payload, alerts: [{ ...alert, labels: JSON.parse('{"alertname":"A","__proto__":"x"}') }] }],
  ];
  for (const [what, data] of refused) t.equal(plainWebhookPayload(data, limits), undefined, what);
});
