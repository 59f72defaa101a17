import { isUtf8 } from 'node:buffer';
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
 * An empty body is `{}`; a charset other than UTF-8 is a 415 (the text was decoded as UTF-8).
 *
 * Bytes that are not UTF-8 are a 400. Decoded as they come (Fastify's parseAs 'string'), each
 * became U+FFFD without a word: a target "ca\xffche" was run, and journalled, as "ca\ufffdche".
 * The body is read as bytes, checked in place (isUtf8: no copy, a fraction of the decode's time)
 * and decoded once. What that adds is the copy Fastify makes of a body it hands over as bytes
 * (it skips it for a string that came in one chunk): about 0.5 µs for a 1.4 kB webhook, whose
 * JSON.parse takes 3 to 5 µs. A fatal TextDecoder needs the same bytes and measured the same.
 */
export function jsonBodies(fastify: FastifyInstance): void {
  const safeParse = fastify.getDefaultJsonParser('error', 'error');
  fastify.removeContentTypeParser('application/json');
  fastify.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body: Buffer, done) => {
    const charset = foreignCharset(request.headers['content-type']);
    if (charset !== null) return done(Object.assign(new Error(`the body's charset is ${JSON.stringify(charset.slice(0, 40))}; upkeep reads JSON as UTF-8: send charset=utf-8 or none`), { statusCode: 415 }), undefined);
    if (!isUtf8(body)) return done(badRequest('the body is not valid UTF-8; upkeep reads JSON as UTF-8: send its text encoded as UTF-8'), undefined);
    const text = body.toString('utf8');
    // An empty body is no body, as it is without a content type (docs/api.md): Fastify refused it.
    if (text === '') return done(null, {});
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

// RFC 9110 §8.3.2: parameter names are case-insensitive, the value a token or a quoted string.
const CHARSET = /;\s*charset\s*=\s*(?:"([^"]*)"|([^;\s]*))/i;

/** The content type's charset when it is not UTF-8 (in any case), else null. */
export function foreignCharset(contentType: string | undefined): string | null {
  if (contentType === undefined || !contentType.includes(';')) return null;
  const match = CHARSET.exec(contentType);
  if (match === null) return null;
  const charset = match[1] ?? match[2] ?? '';
  return charset.toLowerCase() === 'utf-8' ? null : charset;
}
