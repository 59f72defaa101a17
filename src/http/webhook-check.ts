import type { Config } from '../config/schema.js';
import { webhookAlertSchema, type WebhookAlert, type WebhookPayload } from '../triggers/alertmanager-payload.js';
import { labelProblem } from './limits.js';

type Labels = Record<string, string>;
// The schema's own statuses, so the two checks cannot drift apart.
const STATUSES: ReadonlySet<unknown> = new Set(webhookAlertSchema.shape.status.options);

/**
 * What webhookPayloadSchema and the label limits (checkWebhookLabels) give back for a payload they
 * take, checked without zod; undefined for any payload that is not plainly valid, which zod then
 * checks and explains. Zod's parse of each payload, its copies and its issue lists, was a tenth of
 * all the main thread allocated at 1,000 alerts/s, and the young generation's scavenges are what
 * an acknowledgement waits behind (docs/performance.md, "The webhook's own garbage").
 * test/http/webhook-check.test.ts holds it to zod's result over seeded mutations of real payloads.
 */
export function plainWebhookPayload(data: unknown, limits: Readonly<Config['server']>): WebhookPayload | undefined {
  if (!isRecord(data)) return undefined;
  const { version, groupKey, truncatedAlerts, status, receiver, groupLabels, commonLabels, commonAnnotations, externalURL, alerts } = data;
  if (version !== '4' || !STATUSES.has(status) || !Array.isArray(alerts)) return undefined;
  if (!optionalString(groupKey) || !optionalString(receiver) || !optionalString(externalURL)) return undefined;
  if (truncatedAlerts !== undefined && !(Number.isSafeInteger(truncatedAlerts) && Number(truncatedAlerts) >= 0)) return undefined;
  if (!optionalLabels(groupLabels) || !optionalLabels(commonLabels) || !optionalLabels(commonAnnotations)) return undefined;
  if ((groupLabels !== undefined && labelProblem(groupLabels, limits) !== null) || (commonLabels !== undefined && labelProblem(commonLabels, limits) !== null)) return undefined;
  const checked: WebhookAlert[] = [];
  for (const alert of alerts) {
    const plain = plainAlert(alert);
    if (plain === undefined || labelProblem(plain.labels, limits) !== null) return undefined;
    checked.push(plain);
  }
  // Built in the schema's order with only its keys, as zod gives it.
  return {
    version: '4',
    ...(groupKey !== undefined ? { groupKey } : {}),
    ...(truncatedAlerts !== undefined ? { truncatedAlerts: Number(truncatedAlerts) } : {}),
    status: status === 'firing' ? 'firing' : 'resolved',
    ...(receiver !== undefined ? { receiver } : {}),
    ...(groupLabels !== undefined ? { groupLabels } : {}),
    ...(commonLabels !== undefined ? { commonLabels } : {}),
    ...(commonAnnotations !== undefined ? { commonAnnotations } : {}),
    ...(externalURL !== undefined ? { externalURL } : {}),
    alerts: checked,
  };
}

function plainAlert(alert: unknown): WebhookAlert | undefined {
  if (!isRecord(alert)) return undefined;
  const { status, labels, annotations, startsAt, endsAt, generatorURL, fingerprint } = alert;
  if (!STATUSES.has(status) || !isLabels(labels) || typeof labels.alertname !== 'string') return undefined;
  if (!optionalLabels(annotations) || typeof startsAt !== 'string' || startsAt === '' || typeof fingerprint !== 'string' || fingerprint === '') return undefined;
  if (!optionalString(endsAt) || !optionalString(generatorURL)) return undefined;
  return {
    status: status === 'firing' ? 'firing' : 'resolved',
    labels,
    annotations: annotations ?? {},
    startsAt,
    ...(endsAt !== undefined ? { endsAt } : {}),
    ...(generatorURL !== undefined ? { generatorURL } : {}),
    fingerprint,
  };
}

/** A plain object, as JSON.parse makes one. */
function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}

function optionalString(value: unknown): value is string | undefined {
  return value === undefined || typeof value === 'string';
}

/** Every value a string. A `__proto__` key is left to zod, whose copy of the record drops it. */
function isLabels(value: unknown): value is Labels {
  if (!isRecord(value) || Object.hasOwn(value, '__proto__')) return false;
  for (const name in value) if (typeof value[name] !== 'string') return false;
  return true;
}

function optionalLabels(value: unknown): value is Labels | undefined {
  return value === undefined || isLabels(value);
}
