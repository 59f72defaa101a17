import { z } from 'zod';
import { name, parseableUrl, seconds } from '../fields.js';

/**
 * fetch refuses a URL with credentials, and its error (shown in /readyz) quotes the URL whole: such
 * a URL is refused here instead, by path, without echoing it.
 */
export const httpUrl = (message: string) => parseableUrl(/^https?:\/\//, message)
  .refine((text) => !URL.canParse(text) || (new URL(text).username === '' && new URL(text).password === ''), 'must not contain credentials (user:password@): upkeep sends none; use an endpoint that needs no login');

/** A `targets.http` entry: an endpoint whose health is probed. */
export const httpTarget = z.strictObject({
  name,
  url: httpUrl('must be an http:// or https:// URL'),
  timeoutSeconds: seconds.optional(),
  expectStatus: z.number().int().min(100).max(599).optional(),
});

export type HttpTarget = z.infer<typeof httpTarget>;
