import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Engine } from '../remediation/engine.js';
import { runRecordSchema } from '../remediation/journal.js';
import { errorReply, useZod } from './zod.js';

const runsQuery = z.strictObject({
  remediation: z.string().optional(),
  status: runRecordSchema.shape.status.optional(),
  trigger: runRecordSchema.shape.trigger.optional(),
  limit: z.coerce.number().int().positive().max(10_000).default(100),
});
const idParam = z.object({ id: z.string() });

/** GET /runs (newest first, filterable) and GET /runs/:id: the journal. */
export async function runRoutes(fastify: FastifyInstance, options: { engine: Engine }): Promise<void> {
  const { engine } = options;
  useZod(fastify);
  fastify.get('/runs', { schema: { querystring: runsQuery, response: { 200: z.object({ runs: z.array(runRecordSchema) }), 400: errorReply } } }, async (request) => {
    const query = runsQuery.parse(request.query);
    return {
      runs: engine.list({
        limit: query.limit,
        ...(query.remediation !== undefined ? { remediation: query.remediation } : {}),
        ...(query.status !== undefined ? { status: query.status } : {}),
        ...(query.trigger !== undefined ? { trigger: query.trigger } : {}),
      }),
    };
  });
  fastify.get('/runs/:id', { schema: { params: idParam, response: { 200: runRecordSchema, 404: errorReply } } }, async (request, reply) => {
    const { id } = idParam.parse(request.params);
    const record = engine.get(id);
    if (!record) return reply.code(404).send({ error: `no run with id "${id}"` });
    return record;
  });
}
