import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';

/**
 * The header upkeep refuses to see twice in one request, by its usual spelling, or null. Node keeps
 * the first of two Authorization or Content-Type headers without a word, and a proxy in front may
 * read the last: two readings of one request (as with a JSON key given twice, duplicate-keys.ts).
 * Runs on every request (the webhook's hot path): a walk over rawHeaders, which node already
 * holds, comparing names in place without copying or lower-casing them.
 */
export function repeatedHeader(rawHeaders: readonly string[]): 'Authorization' | 'Content-Type' | null {
  let authorization = false;
  let contentType = false;
  for (let index = 0; index < rawHeaders.length; index += 2) {
    const name = rawHeaders[index];
    if (name === undefined) break;
    if (name.length === AUTHORIZATION.length && sameName(name, AUTHORIZATION)) {
      if (authorization) return 'Authorization';
      authorization = true;
    } else if (name.length === CONTENT_TYPE.length && sameName(name, CONTENT_TYPE)) {
      if (contentType) return 'Content-Type';
      contentType = true;
    }
  }
  return null;
}

const AUTHORIZATION = 'authorization';
const CONTENT_TYPE = 'content-type';

/** Whether a header name is `lower` in any case (`lower`: letters and '-'; a token's other characters never fold onto them). */
function sameName(name: string, lower: string): boolean {
  for (let index = 0; index < lower.length; index += 1) if ((name.charCodeAt(index) | 0x20) !== lower.charCodeAt(index)) return false;
  return true;
}

/**
 * Refusals of a request's head, in upkeep's shape and with the usual `request` log line (where
 * node would answer itself, with an empty body and no line): a header given twice (400), an
 * HTTP/1.1 request without Host (400; node's own check is off, slow-clients.ts), an `Expect` other
 * than 100-continue (417). Registered before the bearer check, so a doubled Authorization is a
 * 400 whatever its first value.
 */
export function requestHygiene(fastify: FastifyInstance): void {
  // Node emits checkExpectation, not request, for an Expect it does not know.
  const unmet = new WeakSet<IncomingMessage>();
  fastify.server.on('checkExpectation', (request: IncomingMessage, response: ServerResponse) => {
    unmet.add(request);
    fastify.server.emit('request', request, response);
  });
  // A callback hook: no promise per request.
  fastify.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    const raw = request.raw;
    const repeated = repeatedHeader(raw.rawHeaders);
    if (repeated !== null) {
      reply.code(400).send({ error: `the request gives the ${repeated} header twice; give it once` });
      return;
    }
    if (raw.headers.host === undefined && raw.httpVersionMajor === 1 && raw.httpVersionMinor >= 1) {
      reply.code(400).send({ error: 'an HTTP/1.1 request needs a Host header' });
      return;
    }
    if (unmet.has(raw)) {
      reply.code(417).send({ error: 'upkeep meets no Expect but 100-continue; send the request without the Expect header' });
      return;
    }
    done();
  });
}
