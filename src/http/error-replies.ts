import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { sha256 } from '../lazy.js';
import { StateStoreError } from '../engine/state/store-error.js';
import { loggedPath } from '../log.js';
import { bearerProblem, refuseUnauthorised } from './auth.js';

/**
 * Every refusal is `{ "error": "..." }` naming the problem (SPEC: HTTP API), Fastify's own
 * included: its 404 for an unknown route was `{ message, error: "Not Found", statusCode }`, its
 * 415 said only "Unsupported Media Type", and its 413 named no limit. A 5xx says only "internal
 * error"; the log has the rest.
 */
export function errorReplies(fastify: FastifyInstance): void {
  const bodyTooLarge = `the body is over ${fastify.initialConfig.bodyLimit ?? 0} bytes (server.bodyLimitBytes)`;
  fastify.setErrorHandler((err: { statusCode?: number; code?: string; message: string }, request, reply) => {
    if (err instanceof StateStoreError) {
      // The journal or the claims could not be read or written (the state PostgreSQL down): a
      // 503 the client may retry (Alertmanager re-sends a webhook that got a 5xx), naming what
      // failed; the cause (with the server's address) is in the log only.
      request.log.error({ err }, 'request failed');
      return reply.code(503).header('retry-after', '10').send({ error: `the state store failed while ${err.operation}; upkeep logged why; retry later` });
    }
    const status = err.statusCode ?? 500;
    if (status >= 500) {
      request.log.error({ err }, 'request failed');
      return reply.code(status).send({ error: 'internal error' });
    }
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return reply.code(status).send({ error: mediaTypeRefusal(request.headers['content-type']) });
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.code(status).send({ error: bodyTooLarge });
    return reply.code(status).send({ error: err.message });
  });
  // The path without its query, which may hold what should not be echoed (a token put there by mistake).
  fastify.setNotFoundHandler((request, reply) => reply.code(404).send({ error: `no route ${request.method} ${request.url.split('?')[0] ?? ''}` }));
}

function mediaTypeRefusal(contentType: string | undefined): string {
  const given = contentType === undefined || contentType === '' ? 'no content type' : `content type ${JSON.stringify(contentType.slice(0, 100))}`;
  return `the body has ${given}; send JSON with Content-Type: application/json`;
}

/**
 * Fastify's `frameworkErrors`: what its router refuses before any route or hook runs, a path
 * that is not valid percent-encoded UTF-8 (`/runs/%ZZ`) or a `:name`/`:id` over maxParamLength
 * (100) characters. Fastify answered in its own shape, echoing the whole path (which may hold a
 * token put there by mistake), with a 414, and logged nothing. The path is not repeated here; the
 * request gets its `request` line, as others do (server.ts), and a POST is checked for the bearer
 * token first, as every POST is. The connection is closed: the hooks that would close it under a
 * body still arriving (slow-clients.ts) do not run here.
 */
export function frameworkErrors(token: string | undefined) {
  const expected = token === undefined || token === '' ? null : sha256(token);
  return (err: FastifyError, request: FastifyRequest, reply: FastifyReply): void => {
    reply.header('connection', 'close');
    const problem = expected !== null && request.method === 'POST' ? bearerProblem(request.headers.authorization, expected) : null;
    if (problem !== null) {
      refuseUnauthorised(request, reply, problem);
    } else if (err.code === 'FST_ERR_BAD_URL') {
      reply.code(400).send({ error: 'malformed path: a percent-escape in it is not valid, or does not decode to UTF-8' });
    } else if (err.code === 'FST_ERR_MAX_PARAM_LENGTH') {
      const limit = request.server.initialConfig.maxParamLength ?? 100;
      const path = request.url;
      reply.code(404).send({ error: path.startsWith('/runs/') ? `no run has an id over ${limit} characters (a run id is a UUID)`
        : path.startsWith('/remediations/') ? `no remediation has a name over ${limit} characters; GET /remediations lists them`
          : `no route has a path segment over ${limit} characters` });
    } else {
      request.log.error({ err }, 'request failed');
      reply.code(500).send({ error: 'internal error' });
    }
    request.log.info({ method: request.method, path: loggedPath(request.url), status: reply.statusCode, durationMs: 0 }, 'request');
  };
}
