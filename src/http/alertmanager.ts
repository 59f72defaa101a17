import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Config } from '../config/schema.js';
import { webhookPayloadSchema, type WebhookAlert, type WebhookPayload } from '../triggers/alertmanager-payload.js';
import { QueueFull, type Engine, type Submitted } from '../engine/engine.js';
import { matchingRules, templateParams, TemplateError } from '../triggers/rules.js';
import { alertCount, checkWebhookLabels, sendQueueFull } from './limits.js';
import { errorReply, useZod } from './zod.js';

const accepted = z.object({ fingerprint: z.string(), alertname: z.string(), remediation: z.string(), runId: z.string(), status: z.string() });
// A run the engine rejected at once (invalid params, a name outside what the target watches) is
// listed here with its runId: it is journalled and counted as rejected, and nothing is queued.
const ignored = z.object({ fingerprint: z.string(), alertname: z.string(), status: z.string(), reason: z.string(), remediation: z.string().optional(), runId: z.string().optional() });
const webhookReply = z.object({ accepted: z.array(accepted), ignored: z.array(ignored) });
type Accepted = z.infer<typeof accepted>;
type Ignored = z.infer<typeof ignored>;
type Entry = { accepted: Accepted } | { ignored: Ignored };

/**
 * POST /alertmanager: each alert is handled by its own status. Firing alerts are matched against
 * remediation.rules and queued; resolved ones cancel their queued runs. The reply (202) comes as
 * soon as the accepted runs are journalled; the runs happen in the background. A payload is taken
 * whole or refused whole (413 too many alerts, 429 the queue has no room for all its runs), so a
 * refusal changes nothing and the same payload can simply be sent again.
 */
export async function alertmanagerRoutes(fastify: FastifyInstance, options: { engine: Engine; config: Readonly<Config> }): Promise<void> {
  const { engine, config } = options;
  const { maxAlertsPerWebhook } = config.server;
  const { maxQueued } = config.remediation;
  useZod(fastify);
  // The zod validator compiler (useZod) replaces the body with the parsed payload.
  fastify.post<{ Body: WebhookPayload }>('/alertmanager', {
    schema: {
      body: webhookPayloadSchema.superRefine(checkWebhookLabels(config.server)),
      response: { 202: webhookReply, 400: errorReply, 401: errorReply, 413: errorReply, 429: errorReply },
    },
    // Counted before validation, so a payload of too many alerts costs no more than its parse.
    preValidation: async (request, reply) => {
      const count = alertCount(request.body);
      if (count > maxAlertsPerWebhook) {
        return reply.code(413).send({ error: `${count} alerts in one payload, at most ${maxAlertsPerWebhook} (server.maxAlertsPerWebhook); set max_alerts in Alertmanager's webhook_config` });
      }
    },
  }, async (request, reply) => {
    const payload = request.body;
    // Every (firing alert, matching rule) may queue a run; all of them must fit, or none is queued.
    const wanted = payload.alerts.reduce((sum, alert) => sum + (alert.status === 'firing' ? matchingRules(config.remediation.rules, alert.labels).length : 0), 0);
    if (wanted > maxQueued) {
      return reply.code(413).send({ error: `this payload asks for ${wanted} runs, more than the queue holds: ${maxQueued} (remediation.maxQueued); set max_alerts in Alertmanager's webhook_config` });
    }
    if (wanted > engine.queueRoom()) return sendQueueFull(reply, new QueueFull(maxQueued));
    // In the payload's order; a submitted run's entry is known once it is journalled.
    const entries: Array<Entry | Promise<Entry>> = [];
    for (const alert of payload.alerts) {
      engine.metrics.alertsReceived.inc({ status: alert.status });
      const alertname = alert.labels.alertname ?? '';
      if (alert.status === 'resolved') {
        const cancelled = engine.cancelQueued(alert.fingerprint, 'alert resolved before the run started');
        entries.push({ ignored: { fingerprint: alert.fingerprint, alertname, status: alert.status, reason: `resolved: cancelled ${cancelled.length} queued run(s)` } });
        continue;
      }
      const rules = matchingRules(config.remediation.rules, alert.labels);
      if (rules.length === 0) {
        entries.push({ ignored: { fingerprint: alert.fingerprint, alertname, status: alert.status, reason: 'no remediation rule matches its labels' } });
        continue;
      }
      for (const { rule, index } of rules) {
        const submitted = submitRule(engine, alert, rule, index);
        if ('templateError' in submitted) {
          entries.push({ ignored: { fingerprint: alert.fingerprint, alertname, status: alert.status, reason: submitted.templateError } });
          continue;
        }
        entries.push(outcome(submitted, alert, alertname, rule.remediation));
      }
    }
    const result = { accepted: [] as Accepted[], ignored: [] as Ignored[] };
    for (const entry of await Promise.all(entries)) {
      if ('accepted' in entry) result.accepted.push(entry.accepted);
      else result.ignored.push(entry.ignored);
    }
    // The request's own line (server.ts) is the info-level record; the counts are detail.
    request.log.debug({ accepted: result.accepted.length, ignored: result.ignored.length }, 'alertmanager webhook handled');
    return reply.code(202).send(result);
  });
}

function submitRule(engine: Engine, alert: WebhookAlert, rule: Readonly<Config['remediation']['rules'][number]>, index: number): Submitted | { templateError: string } {
  let params: Record<string, string | number | boolean>;
  try {
    params = templateParams(rule.params, alert.labels);
  } catch (err) {
    if (err instanceof TemplateError) return { templateError: `rule remediation.rules[${index}]: ${err.message}` };
    throw err;
  }
  return engine.submit({
    remediation: rule.remediation, params, trigger: 'alert', allowRisk: rule.allowRisk, source: `remediation.rules[${index}]`,
    ...(rule.dryRun !== undefined ? { dryRun: rule.dryRun } : {}),
    alert: { fingerprint: alert.fingerprint, startsAt: alert.startsAt, alertname: alert.labels.alertname ?? '', labels: alert.labels },
  });
}

/** Accepted with its status once journalled; rejected by the engine's screen, ignored with the reason. */
async function outcome(submitted: Submitted, alert: WebhookAlert, alertname: string, remediation: string): Promise<Entry> {
  const status = await submitted.journalled;
  if (status === 'rejected') {
    const { reason } = await submitted.done;
    return { ignored: { fingerprint: alert.fingerprint, alertname, status: alert.status, reason: `rejected: ${reason ?? 'no reason given'}`, remediation, runId: submitted.runId } };
  }
  return { accepted: { fingerprint: alert.fingerprint, alertname, remediation, runId: submitted.runId, status } };
}
