import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Config } from '../config/schema.js';
import { QueueFull, type Engine } from '../engine/engine.js';
import { matchAlerts, receiveAlerts } from '../triggers/alertmanager.js';
import { webhookPayloadSchema, type WebhookPayload } from '../triggers/alertmanager-payload.js';
import { alertCount, checkWebhookLabels, sendQueueFull } from './limits.js';
import { plainWebhookPayload } from './webhook-check.js';
import { errorReply, useZod, withPlainCheck } from './zod.js';

const accepted = z.object({ fingerprint: z.string(), alertname: z.string(), remediation: z.string(), runId: z.string(), status: z.string() });
// A run the engine rejected at once (invalid params, a name outside what the target watches) is
// listed here with its runId: it is journalled and counted as rejected, and nothing is queued.
const ignored = z.object({ fingerprint: z.string(), alertname: z.string(), status: z.string(), reason: z.string(), remediation: z.string().optional(), runId: z.string().optional() });
const webhookReply = z.object({ accepted: z.array(accepted), ignored: z.array(ignored) });

/**
 * POST /alertmanager: validates the payload and hands it to the Alertmanager trigger (firing alerts
 * queue runs by remediation.rules; resolved ones cancel their queued runs). The reply (202) comes as
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
      body: withPlainCheck(webhookPayloadSchema.superRefine(checkWebhookLabels(config.server)), (data) => plainWebhookPayload(data, config.server)),
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
    const { matches, wanted } = matchAlerts(payload, config.remediation.rules);
    if (wanted > maxQueued) {
      return reply.code(413).send({ error: `this payload asks for ${wanted} runs, more than the queue holds: ${maxQueued} (remediation.maxQueued); set max_alerts in Alertmanager's webhook_config` });
    }
    if (wanted > engine.queueRoom()) return sendQueueFull(reply, new QueueFull(maxQueued));
    const result = await receiveAlerts(engine, payload, matches);
    // The request's own line (server.ts) is the info-level record; the counts are detail.
    request.log.debug({ accepted: result.accepted.length, ignored: result.ignored.length }, 'alertmanager webhook handled');
    return reply.code(202).send(result);
  });
}
