import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Engine } from '../engine/engine.js';
import { runRecordSchema } from '../engine/journal.js';
import { InvalidCursorError } from '../engine/state/store.js';
import { errorReply, useZod } from './zod.js';

const idParam = z.object({ id: z.string() });
const runsPage = z.object({ runs: z.array(runRecordSchema), next: z.string().nullable() });

/**
 * GET /runs (newest first, filterable, a page at a time: `next` is the cursor of the next page)
 * and GET /runs/:id: the journal. `pageLimit` is server.runsPageLimit, the largest `limit`.
 */
export async function runRoutes(fastify: FastifyInstance, options: { engine: Engine; pageLimit: number }): Promise<void> {
  const { engine, pageLimit } = options;
  // Decimal digits only: z.coerce.number took `0x10`, ` 10` and `1e2`, and said of an empty value "expected number to be >0".
  const limitRule = `must be a whole number from 1 to ${pageLimit} (server.runsPageLimit), in decimal digits`;
  const runsQuery = z.strictObject({
    remediation: z.string().optional(),
    status: runRecordSchema.shape.status.optional(),
    trigger: runRecordSchema.shape.trigger.optional(),
    limit: z.string().regex(/^[0-9]+$/, limitRule).transform(Number).pipe(z.number().min(1, limitRule).max(pageLimit, limitRule)).default(Math.min(100, pageLimit)),
    cursor: z.string().optional(),
  });
  useZod(fastify);
  // The zod validator compiler (useZod) replaces the query with the parsed one: parsing it again would see a number for limit.
  fastify.get<{ Querystring: z.output<typeof runsQuery> }>('/runs', { schema: { querystring: runsQuery, response: { 200: runsPage, 400: errorReply } } }, async (request, reply) => {
    const query = request.query;
    const filter = {
      ...(query.remediation !== undefined ? { remediation: query.remediation } : {}),
      ...(query.status !== undefined ? { status: query.status } : {}),
      ...(query.trigger !== undefined ? { trigger: query.trigger } : {}),
    };
    try {
      const page = await engine.listJson(filter, query.cursor ?? null, query.limit);
      // The records are already JSON (checked by the store): joined, not parsed and serialised again.
      return reply.type('application/json; charset=utf-8').serializer((text) => String(text)).send(`{"runs":[${page.runs.join(',')}],"next":${JSON.stringify(page.next)}}`);
    } catch (err) {
      if (err instanceof InvalidCursorError) return reply.code(400).send({ error: err.message });
      throw err;
    }
  });
  fastify.get('/runs/:id', { schema: { params: idParam, response: { 200: runRecordSchema, 404: errorReply } } }, async (request, reply) => {
    const { id } = idParam.parse(request.params);
    // Run ids are UUIDs, which are case-insensitive; upkeep writes them in lower case.
    const record = await engine.get(id.toLowerCase());
    if (!record) return reply.code(404).send({ error: `no run with id "${id}"` });
    return record;
  });
}
