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
    const plain = plainChecks.get(schema);
    return (given: unknown) => {
      const repeated = httpPart === 'querystring' ? repeatedParameter(given) : null;
      if (repeated !== null) return { error: new Error(`invalid querystring: "${repeated}" is given more than once; give it once`) };
      // Fastify gives a POST without a body as null: it is an absent body, which a schema's default fills.
      const data = httpPart === 'body' && given === null ? undefined : given;
      const checked = plain?.(data);
      if (checked !== undefined) return { value: checked };
      const result = schema.safeParse(data);
      if (result.success) return { value: result.data };
      return { error: new Error(`invalid ${httpPart ?? 'request'}: ${describeIssues(result.error.issues)}`) };
    };
  });
  fastify.setSerializerCompiler(() => (data) => JSON.stringify(data));
}

/**
 * A query parameter given twice (`?status=success&status=failure`) arrives as an array: every
 * parameter upkeep takes is one value, and taking the first or the last would be a guess. Without
 * this check the schema's message was about the array (`expected number, received NaN`).
 */
function repeatedParameter(data: unknown): string | null {
  if (typeof data !== 'object' || data === null) return null;
  for (const [name, value] of Object.entries(data)) if (Array.isArray(value)) return name;
  return null;
}

const plainChecks = new WeakMap<z.ZodType, (data: unknown) => unknown>();

/**
 * Gives a route's zod schema a check without zod for its common case (a hot route's payload):
 * `plain` returns what the schema's parse would, or undefined, and zod then checks (and explains)
 * what it did not take.
 */
export function withPlainCheck<T extends z.ZodType>(schema: T, plain: (data: unknown) => z.output<T> | undefined): T {
  plainChecks.set(schema, plain);
  return schema;
}

/**
 * For Fastify's `schemaController.compilersFactory`. Fastify loads its default compilers, ajv and
 * fast-json-stringify (about 100 modules, kept in memory for the process's life), when no factory
 * is given, though upkeep replaces them on every route (useZod). These are never called: a
 * context with zod compilers never asks for a built one.
 */
export const noDefaultCompilers = {
  buildValidator(): never { throw new Error('route schemas are zod schemas: call useZod on the plugin'); },
  buildSerializer(): never { throw new Error('route schemas are zod schemas: call useZod on the plugin'); },
};

export const errorReply = z.object({ error: z.string() });
