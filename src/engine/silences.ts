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
// How often a silence that could not be expired is tried again, until it would have ended anyway.
const RETRY_MS = 5_000;
// How long a silence named only by the journal (a run a crash or a dead replica left) may still
// hold: its end is not journalled, so it is tried for as long as the longest one could last.
const UNKNOWN_END_MS = 24 * 3_600_000 + SILENCE_MARGIN_MS;

/** The silences the engine holds on an alert while its remediation runs; none without alertmanager.url. */
export class AlertSilences {
  private readonly client: SilenceClient | null;
  /** When each silence this process made ends by itself (epoch ms). */
  private readonly ends = new Map<string, number>();
  private readonly retries = new Set<NodeJS.Timeout>();

  constructor(alertmanagerUrl: string | undefined, private readonly retryMs = RETRY_MS) {
    this.client = alertmanagerUrl ? new SilenceClient(alertmanagerUrl) : null;
  }

  /** Silences the run's alert until just after its deadline; the silence id, or null (no alert, no Alertmanager, or it failed). */
  async hold(alert: { readonly labels: Readonly<Record<string, string>> } | undefined, run: { readonly id: string; readonly remediation: string }, deadline: number, log: Logger): Promise<string | null> {
    if (!this.client || !alert) return null;
    try {
      const id = await this.client.silence(alert.labels, new Date(deadline + SILENCE_MARGIN_MS), `upkeep is running ${run.remediation} (run ${run.id})`);
      this.ends.set(id, deadline + SILENCE_MARGIN_MS);
      log.info({ silenceId: id }, 'alert silenced while the remediation runs');
      return id;
    } catch (err) {
      // A down Alertmanager must not stop the remediation; the alert just keeps notifying.
      log.warn({ err }, 'could not create a silence');
      return null;
    }
  }

  /**
   * Expires the silence, at once or, while Alertmanager refuses, every few seconds until it would
   * have ended by itself. Tried once, a silence outlived a run that failed while Alertmanager was
   * away by up to an hour: the failed remediation hid its own alert from everyone.
   */
  async release(silenceId: string, log: Logger): Promise<void> {
    if (!this.client) return;
    const endsAt = this.ends.get(silenceId) ?? Date.now() + UNKNOWN_END_MS;
    this.ends.delete(silenceId);
    const refused = await this.expireError(silenceId);
    if (refused === null) return;
    log.warn({ err: refused, silenceId, retrySeconds: this.retryMs / 1000 }, 'could not expire the silence; trying again until it would end by itself');
    const again = (): void => {
      const timer = setTimeout(() => {
        this.retries.delete(timer);
        void this.expireError(silenceId).then((err) => {
          if (err === null) log.info({ silenceId }, 'silence expired');
          else if (Date.now() + this.retryMs < endsAt) again();
        });
      }, this.retryMs);
      // Pending retries do not hold the process open: a silence ends by itself in the end.
      timer.unref();
      this.retries.add(timer);
    };
    again();
  }

  /** Stops the retries (the engine is closing). */
  close(): void {
    for (const timer of this.retries) clearTimeout(timer);
    this.retries.clear();
  }

  /**
   * Null once the silence is expired (or Alertmanager no longer has it: one restarted without its
   * storage answers 500 "silence not found", and nothing is left to expire), else why not.
   */
  private async expireError(silenceId: string): Promise<unknown> {
    try {
      await this.client?.expire(silenceId);
      return null;
    } catch (err) {
      return err instanceof Error && err.message.includes('silence not found') ? null : err;
    }
  }
}
