import { z } from 'zod';
import type { Logger } from '../log.js';

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

// The silence outlives the run's deadline by this much, so it never lapses while the run still goes on.
const SILENCE_MARGIN_MS = 60_000;

/** The silences the engine holds on an alert while its remediation runs; none without alertmanager.url. */
export class AlertSilences {
  private readonly client: SilenceClient | null;

  constructor(alertmanagerUrl: string | undefined) {
    this.client = alertmanagerUrl ? new SilenceClient(alertmanagerUrl) : null;
  }

  /** Silences the run's alert until just after its deadline; the silence id, or null (no alert, no Alertmanager, or it failed). */
  async hold(alert: { readonly labels: Readonly<Record<string, string>> } | undefined, run: { readonly id: string; readonly remediation: string }, deadline: number, log: Logger): Promise<string | null> {
    if (!this.client || !alert) return null;
    try {
      const id = await this.client.silence(alert.labels, new Date(deadline + SILENCE_MARGIN_MS), `upkeep is running ${run.remediation} (run ${run.id})`);
      log.info({ silenceId: id }, 'alert silenced while the remediation runs');
      return id;
    } catch (err) {
      // A down Alertmanager must not stop the remediation; the alert just keeps notifying.
      log.warn({ err }, 'could not create a silence');
      return null;
    }
  }

  async release(silenceId: string, log: Logger): Promise<void> {
    try {
      await this.client?.expire(silenceId);
    } catch (err) {
      log.warn({ err, silenceId }, 'could not expire the silence; it ends by itself shortly after the run deadline');
    }
  }
}
