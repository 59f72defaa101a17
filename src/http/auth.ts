import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { nodeCrypto, sha256 } from '../lazy.js';

/** Compares in constant time: both sides are hashed first, so lengths are always equal. */
export function tokenMatches(presented: string, expected: string | Buffer): boolean {
  return nodeCrypto().timingSafeEqual(sha256(presented), typeof expected === 'string' ? sha256(expected) : expected);
}

/** When server.authToken is set, every POST needs `Authorization: Bearer TOKEN`. Checked before the body is read. */
export const bearerAuth = fp(async (fastify: FastifyInstance, options: { token: string | undefined }) => {
  const { token } = options;
  if (token === undefined || token === '') return;
  // Hashed once: every webhook is checked against it.
  const expected = sha256(token);
  fastify.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (request.method !== 'POST') return;
    const header = request.headers.authorization ?? '';
    const presented = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : '';
    if (presented !== '' && tokenMatches(presented, expected)) return;
    request.log.warn({ url: request.url, reason: presented === '' ? 'no bearer token' : 'wrong bearer token' }, 'unauthorised POST refused');
    return reply.code(401).header('www-authenticate', 'Bearer').send({ error: presented === '' ? 'missing bearer token (Authorization: Bearer TOKEN)' : 'invalid bearer token' });
  });
}, { name: 'upkeep-bearer-auth' });
