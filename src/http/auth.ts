import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { nodeCrypto } from '../lazy.js';

function digest(text: string): Buffer {
  return nodeCrypto().createHash('sha256').update(text).digest();
}

/** Compares in constant time: both sides are hashed first, so lengths are always equal. */
export function tokenMatches(presented: string, expected: string): boolean {
  return nodeCrypto().timingSafeEqual(digest(presented), digest(expected));
}

/** When server.authToken is set, every POST needs `Authorization: Bearer TOKEN`. Checked before the body is read. */
export const bearerAuth = fp(async (fastify: FastifyInstance, options: { token: string | undefined }) => {
  const { token } = options;
  if (token === undefined || token === '') return;
  fastify.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (request.method !== 'POST') return;
    const header = request.headers.authorization ?? '';
    const presented = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : '';
    if (presented !== '' && tokenMatches(presented, token)) return;
    request.log.warn({ url: request.url, reason: presented === '' ? 'no bearer token' : 'wrong bearer token' }, 'unauthorised POST refused');
    return reply.code(401).header('www-authenticate', 'Bearer').send({ error: presented === '' ? 'missing bearer token (Authorization: Bearer TOKEN)' : 'invalid bearer token' });
  });
}, { name: 'upkeep-bearer-auth' });
