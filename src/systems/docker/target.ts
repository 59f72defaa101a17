import { z } from 'zod';
import { name, seconds } from '../fields.js';

/** A `targets.docker` entry: the Unix socket (the default) or a TCP host. */
export const dockerTarget = z.strictObject({
  name,
  socketPath: z.string().optional(),
  host: z.string().optional(),
  port: z.number().int().positive().optional(),
  diskRefreshSeconds: seconds.default(300),
  logRefreshSeconds: seconds.default(60),
}).refine((t) => !(t.socketPath && t.host), 'set socketPath or host, not both');

export type DockerTarget = z.infer<typeof dockerTarget>;
