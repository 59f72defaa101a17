import type { FastifyInstance } from 'fastify';

/**
 * Every refusal is `{ "error": "..." }` naming the problem (SPEC: HTTP API), Fastify's own
 * included: its 404 for an unknown route was `{ message, error: "Not Found", statusCode }`, and its
 * 415 said only "Unsupported Media Type". A 5xx says only "internal error"; the log has the rest.
 */
export function errorReplies(fastify: FastifyInstance): void {
  fastify.setErrorHandler((err: { statusCode?: number; code?: string; message: string }, request, reply) => {
    const status = err.statusCode ?? 500;
    if (status >= 500) {
      request.log.error({ err }, 'request failed');
      return reply.code(status).send({ error: 'internal error' });
    }
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return reply.code(status).send({ error: mediaTypeRefusal(request.headers['content-type']) });
    return reply.code(status).send({ error: err.message });
  });
  // The path without its query, which may hold what should not be echoed (a token put there by mistake).
  fastify.setNotFoundHandler((request, reply) => reply.code(404).send({ error: `no route ${request.method} ${request.url.split('?')[0] ?? ''}` }));
}

function mediaTypeRefusal(contentType: string | undefined): string {
  const given = contentType === undefined || contentType === '' ? 'no content type' : `content type ${JSON.stringify(contentType.slice(0, 100))}`;
  return `the body has ${given}; send JSON with Content-Type: application/json`;
}
