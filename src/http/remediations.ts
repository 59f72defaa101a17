import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Config } from '../config/schema.js';
import { QueueFull, type Engine } from '../engine/engine.js';
import { runRecordSchema } from '../engine/journal.js';
import type { AnyAction } from '../actions/contract.js';
import { submitManual } from '../triggers/manual.js';
import { checkParams, sendQueueFull } from './limits.js';
import { errorReply, useZod } from './zod.js';

const remediationInfo = z.object({ name: z.string(), description: z.string(), risk: z.string(), params: z.record(z.string(), z.unknown()) });

/** A manual run's body, within the limits: params (server.maxParams*) and timeoutSeconds (remediation.maxTimeoutSeconds). */
function runBodySchema(config: Readonly<Config>) {
  const { maxTimeoutSeconds } = config.remediation;
  return z.strictObject({
    params: z.record(z.string(), z.unknown()).default({}),
    dryRun: z.boolean().optional(),
    // Under a second a run cannot even connect: it would only ever fail on its deadline.
    timeoutSeconds: z.number().min(1, 'must be at least 1').max(maxTimeoutSeconds, `must be at most ${maxTimeoutSeconds} (remediation.maxTimeoutSeconds)`).optional(),
  }).superRefine(checkParams(config.server)).default({ params: {} });
}
const runQuery = z.object({ wait: z.enum(['true', 'false']).optional() });
const nameParam = z.object({ name: z.string() });

function describeRemediation(action: AnyAction) {
  return {
    name: action.name,
    description: action.description,
    risk: action.riskClass ?? 'see description',
    params: z.toJSONSchema(action.params, { io: 'input', unrepresentable: 'any' }),
  };
}

/** GET /remediations and POST /remediations/:name (a manual run, optionally waiting for it). */
export async function remediationRoutes(fastify: FastifyInstance, options: { engine: Engine; config: Readonly<Config> }): Promise<void> {
  const { engine } = options;
  const runBody = runBodySchema(options.config);
  useZod(fastify);
  fastify.get('/remediations', { schema: { response: { 200: z.object({ remediations: z.array(remediationInfo) }) } } }, async () => ({
    remediations: engine.listActions().map(describeRemediation),
  }));

  fastify.post('/remediations/:name', {
    schema: {
      params: nameParam, querystring: runQuery, body: runBody,
      response: { 200: runRecordSchema, 202: z.object({ runId: z.string() }), 400: errorReply, 401: errorReply, 404: errorReply, 413: errorReply, 429: errorReply },
    },
  }, async (request, reply) => {
    const { name } = nameParam.parse(request.params);
    const body = runBody.parse(request.body);
    let outcome: ReturnType<typeof submitManual>;
    try {
      outcome = submitManual(engine, { remediation: name, ...body });
    } catch (err) {
      if (err instanceof QueueFull) return sendQueueFull(reply, err);
      throw err;
    }
    if ('unknown' in outcome) return reply.code(404).send({ error: outcome.unknown });
    // Malformed params, and names the config alone refuses, get a 400 here: nothing is queued or journalled.
    if ('rejected' in outcome) return reply.code(400).send({ error: outcome.rejected });
    const { submitted } = outcome;
    await submitted.journalled;
    if (runQuery.parse(request.query).wait === 'true') return reply.code(200).send(await submitted.done);
    return reply.code(202).send({ runId: submitted.runId });
  });
}
