import { z } from 'zod';
import { name, parseableUrl, seconds } from '../fields.js';

/** A `targets.redis` entry. */
export const redisTarget = z.strictObject({
  name,
  url: parseableUrl(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL'),
  keyPatterns: z.array(z.string().min(1)).default([]),
  keyPatternRefreshSeconds: seconds.default(60),
  // PEM file of the CA that signed the server's certificate, for rediss:// with a private CA.
  caFile: z.string().min(1).optional(),
});

export type RedisTarget = z.infer<typeof redisTarget>;
