import { z } from 'zod';
import { name, parseableUrl, seconds } from '../fields.js';

/** A `targets.redis` entry. */
export const redisTarget = z.strictObject({
  name,
  // ioredis reads the path with parseInt: "/one" would be database 0, "/1x" database 1.
  url: parseableUrl(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
    .refine((url) => !URL.canParse(url) || /^\/?(\d+)?$/.test(new URL(url).pathname), 'the path must be a database number (redis://HOST:PORT/1), or none for database 0'),
  keyPatterns: z.array(z.string().min(1)).default([]),
  keyPatternRefreshSeconds: seconds.default(60),
  // PEM file of the CA that signed the server's certificate, for rediss:// with a private CA.
  caFile: z.string().min(1).optional(),
});

export type RedisTarget = z.infer<typeof redisTarget>;
