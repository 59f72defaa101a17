import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { nodeCrypto, sha256 } from '../lazy.js';
import { repeatedHeader } from './request-hygiene.js';

/** Compares in constant time: both sides are hashed first, so lengths are always equal. */
export function tokenMatches(presented: string, expected: string | Buffer): boolean {
  return nodeCrypto().timingSafeEqual(sha256(presented), typeof expected === 'string' ? sha256(expected) : expected);
}

/**
 * The token of an `Authorization: Bearer TOKEN` header, or '' for none or another scheme. The
 * scheme is case-insensitive (RFC 9110 §11.1: `bearer`, `BEARER`), and one or more spaces may
 * follow it (§11.4).
 */
export function bearerToken(header: string | undefined): string {
  if (header === undefined || header.length <= BEARER.length || header.charCodeAt(BEARER.length) !== SPACE) return '';
  for (let index = 0; index < BEARER.length; index += 1) if ((header.charCodeAt(index) | 0x20) !== BEARER.charCodeAt(index)) return '';
  let start = BEARER.length + 1;
  while (header.charCodeAt(start) === SPACE) start += 1;
  return header.slice(start);
}

const BEARER = 'bearer';
const SPACE = 0x20;

/** Why a POST's Authorization header is refused, or null when it carries the token (hashed: `expected`). */
export function bearerProblem(header: string | undefined, expected: Buffer): 'no bearer token' | 'wrong bearer token' | null {
  const presented = bearerToken(header);
  if (presented === '') return 'no bearer token';
  return tokenMatches(presented, expected) ? null : 'wrong bearer token';
}

/** The 401, logged (without the token). */
export function refuseUnauthorised(request: FastifyRequest, reply: FastifyReply, reason: 'no bearer token' | 'wrong bearer token'): FastifyReply {
  request.log.warn({ url: request.url, reason }, 'unauthorised POST refused');
  return reply.code(401).header('www-authenticate', 'Bearer').send({ error: reason === 'no bearer token' ? 'missing bearer token (Authorization: Bearer TOKEN)' : 'invalid bearer token' });
}

/**
 * When server.authToken is set, every POST needs `Authorization: Bearer TOKEN`. Checked before the
 * body is read, and before a client that sent `Expect: 100-continue` is told to send it: node
 * grants that at once unless the server listens for checkContinue, so an unauthenticated client
 * uploaded its whole body only to get the 401.
 */
export const bearerAuth = fp(async (fastify: FastifyInstance, options: { token: string | undefined }) => {
  const { token } = options;
  if (token === undefined || token === '') return;
  // Hashed once: every webhook is checked against it.
  const expected = sha256(token);
  fastify.server.on('checkContinue', (request: IncomingMessage, response: ServerResponse) => {
    // Refused requests get no 100 Continue; the 401 (or the 400 for a doubled header) closes the connection.
    if (request.method !== 'POST' || (repeatedHeader(request.rawHeaders) === null && bearerProblem(request.headers.authorization, expected) === null)) response.writeContinue();
    fastify.server.emit('request', request, response);
  });
  fastify.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (request.method !== 'POST') return;
    const problem = bearerProblem(request.headers.authorization, expected);
    if (problem !== null) return refuseUnauthorised(request, reply, problem);
  });
}, { name: 'upkeep-bearer-auth' });
