import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { describeIssues } from '../zod-issues.js';

/**
 * Route schemas are zod schemas: one definition validates the request, types the handler's
 * input, and (through z.toJSONSchema) documents the API. Replies are plain JSON.
 */
export function useZod(fastify: FastifyInstance): void {
  fastify.setValidatorCompiler(({ schema, httpPart }) => {
    if (!(schema instanceof z.ZodType)) throw new Error('route schemas must be zod schemas');
    return (data: unknown) => {
      const result = schema.safeParse(data);
      if (result.success) return { value: result.data };
      return { error: new Error(`invalid ${httpPart ?? 'request'}: ${describeIssues(result.error.issues)}`) };
    };
  });
  fastify.setSerializerCompiler(() => (data) => JSON.stringify(data));
}

export const errorReply = z.object({ error: z.string() });
