import type { FastifyInstance } from 'fastify';
import { duplicateKey } from './duplicate-keys.js';

function badRequest(message: string): Error & { statusCode: number } {
  return Object.assign(new Error(message), { statusCode: 400 });
}

/**
 * JSON bodies are parsed by Fastify's own safe parser, which refuses `__proto__` and
 * `constructor.prototype` keys (prototype pollution), but answers every refusal with the same
 * "not valid JSON". A refused body is parsed once more to say which it was: the syntax error, or
 * the forbidden key. A body that gives one key twice is refused too (duplicate-keys.ts says why).
 */
export function jsonBodies(fastify: FastifyInstance): void {
  const safeParse = fastify.getDefaultJsonParser('error', 'error');
  fastify.removeContentTypeParser('application/json');
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, (request, text: string, done) => {
    safeParse(request, text, (err: (Error & { code?: string }) | null, value?: unknown) => {
      if (err === null) {
        const repeated = duplicateKey(text);
        return repeated === null ? done(null, value) : done(badRequest(`the body gives the key ${JSON.stringify(repeated)} twice; give each key once`), undefined);
      }
      if (err.code !== 'FST_ERR_CTP_INVALID_JSON_BODY') return done(err, value);
      try {
        JSON.parse(text);
      } catch (syntax) {
        return done(badRequest(`the body is not valid JSON: ${(syntax as SyntaxError).message}`), undefined);
      }
      return done(badRequest('the body has a "__proto__" or "constructor.prototype" key; upkeep refuses them (prototype pollution)'), undefined);
    });
  });
}
