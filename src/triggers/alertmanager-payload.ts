import { z } from 'zod';

/**
 * The Alertmanager webhook payload, version 4 (what Alertmanager 0.2x POSTs to a webhook
 * receiver). Unknown keys are allowed so a newer Alertmanager does not break the webhook; the
 * fields upkeep relies on are required.
 */
const labelSet = z.record(z.string(), z.string());

export const webhookAlertSchema = z.object({
  status: z.enum(['firing', 'resolved']),
  labels: labelSet.refine((labels) => typeof labels.alertname === 'string', 'must include alertname'),
  annotations: labelSet.default({}),
  startsAt: z.string().min(1),
  endsAt: z.string().optional(),
  generatorURL: z.string().optional(),
  fingerprint: z.string().min(1),
});

export const webhookPayloadSchema = z.object({
  version: z.literal('4'),
  groupKey: z.string().optional(),
  truncatedAlerts: z.number().int().min(0).optional(),
  status: z.enum(['firing', 'resolved']),
  receiver: z.string().optional(),
  groupLabels: labelSet.optional(),
  commonLabels: labelSet.optional(),
  commonAnnotations: labelSet.optional(),
  externalURL: z.string().optional(),
  alerts: z.array(webhookAlertSchema),
});

export type WebhookPayload = z.infer<typeof webhookPayloadSchema>;
export type WebhookAlert = z.infer<typeof webhookAlertSchema>;

const silenceCreated = z.object({ silenceID: z.string().min(1) });

/** Creates and expires silences through Alertmanager's v2 API. */
export class SilenceClient {
  constructor(private readonly baseUrl: string, private readonly timeoutMs = 5000) {}

  /** Silences exactly this alert (every one of its labels) until `endsAt`; returns the silence id. */
  async silence(labels: Readonly<Record<string, string>>, endsAt: Date, comment: string): Promise<string> {
    const body = {
      matchers: Object.entries(labels).map(([name, value]) => ({ name, value, isRegex: false, isEqual: true })),
      startsAt: new Date().toISOString(),
      endsAt: endsAt.toISOString(),
      createdBy: 'upkeep',
      comment,
    };
    const response = await this.request('POST', '/api/v2/silences', body);
    const parsed = silenceCreated.safeParse(await response.json());
    if (!parsed.success) throw new Error(`alertmanager.url: POST /api/v2/silences answered without a silenceID`);
    return parsed.data.silenceID;
  }

  async expire(silenceId: string): Promise<void> {
    await this.request('DELETE', `/api/v2/silence/${encodeURIComponent(silenceId)}`);
  }

  private async request(method: string, path: string, body?: unknown): Promise<Response> {
    const url = `${this.baseUrl.replace(/\/$/, '')}${path}`;
    const response = await fetch(url, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    if (!response.ok) {
      const text = await response.text();
      throw new Error(`alertmanager.url: ${method} ${path} answered ${response.status}: ${text.slice(0, 200)}`);
    }
    return response;
  }
}
