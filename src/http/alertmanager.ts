import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Config } from '../config/schema.js';
import { webhookPayloadSchema, type WebhookAlert, type WebhookPayload } from '../remediation/alertmanager.js';
import type { Engine } from '../remediation/engine.js';
import { matchingRules, templateParams, TemplateError } from '../remediation/rules.js';
import type { RunStatus } from '../remediation/types.js';
import { errorReply, useZod } from './zod.js';

const accepted = z.object({ fingerprint: z.string(), alertname: z.string(), remediation: z.string(), runId: z.string(), status: z.string() });
const ignored = z.object({ fingerprint: z.string(), alertname: z.string(), status: z.string(), reason: z.string() });
const webhookReply = z.object({ accepted: z.array(accepted), ignored: z.array(ignored) });
type Accepted = z.infer<typeof accepted>;
type Ignored = z.infer<typeof ignored>;

/**
 * POST /alertmanager: each alert is handled by its own status. Firing alerts are matched against
 * remediation.rules and queued; resolved ones cancel their queued runs. The reply (202) comes as
 * soon as the accepted runs are journalled; the runs happen in the background.
 */
export async function alertmanagerRoutes(fastify: FastifyInstance, options: { engine: Engine; config: Readonly<Config> }): Promise<void> {
  const { engine, config } = options;
  useZod(fastify);
  // The zod validator compiler (useZod) replaces the body with the parsed payload.
  fastify.post<{ Body: WebhookPayload }>('/alertmanager', {
    schema: { body: webhookPayloadSchema, response: { 202: webhookReply, 400: errorReply, 401: errorReply, 413: errorReply } },
  }, async (request, reply) => {
    const payload = request.body;
    const result = { accepted: [] as Accepted[], ignored: [] as Ignored[] };
    const writes: Promise<void>[] = [];
    for (const alert of payload.alerts) {
      engine.metrics.alertsReceived.inc({ status: alert.status });
      const alertname = alert.labels.alertname ?? '';
      if (alert.status === 'resolved') {
        const cancelled = engine.cancelQueued(alert.fingerprint, 'alert resolved before the run started');
        result.ignored.push({ fingerprint: alert.fingerprint, alertname, status: alert.status, reason: `resolved: cancelled ${cancelled.length} queued run(s)` });
        continue;
      }
      const rules = matchingRules(config.remediation.rules, alert.labels);
      if (rules.length === 0) {
        result.ignored.push({ fingerprint: alert.fingerprint, alertname, status: alert.status, reason: 'no remediation rule matches its labels' });
        continue;
      }
      for (const { rule, index } of rules) {
        const submitted = submitRule(engine, alert, rule, index);
        if ('reason' in submitted) {
          result.ignored.push({ fingerprint: alert.fingerprint, alertname, status: alert.status, reason: submitted.reason });
          continue;
        }
        const entry = { fingerprint: alert.fingerprint, alertname, remediation: rule.remediation, runId: submitted.runId, status: 'queued' };
        writes.push(submitted.journalled.then((status) => { entry.status = status; }));
        result.accepted.push(entry);
      }
    }
    await Promise.all(writes);
    request.log.info({ accepted: result.accepted.length, ignored: result.ignored.length }, 'alertmanager webhook handled');
    return reply.code(202).send(result);
  });
}

function submitRule(engine: Engine, alert: WebhookAlert, rule: Readonly<Config['remediation']['rules'][number]>, index: number): { runId: string; journalled: Promise<RunStatus> } | { reason: string } {
  let params: Record<string, string | number | boolean>;
  try {
    params = templateParams(rule.params, alert.labels);
  } catch (err) {
    if (err instanceof TemplateError) return { reason: `rule remediation.rules[${index}]: ${err.message}` };
    throw err;
  }
  return engine.submit({
    remediation: rule.remediation, params, trigger: 'alert', allowRisk: rule.allowRisk, source: `remediation.rules[${index}]`,
    ...(rule.dryRun !== undefined ? { dryRun: rule.dryRun } : {}),
    alert: { fingerprint: alert.fingerprint, startsAt: alert.startsAt, alertname: alert.labels.alertname ?? '', labels: alert.labels },
  });
}
