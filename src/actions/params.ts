import { z } from 'zod';

// Parameters arrive as JSON (manual POST), as config values, or as text (alert label templates and
// `upkeep run --param k=v`), so booleans and counts also accept their text forms.
export function flag(defaultValue: boolean) {
  return z.preprocess((value) => (value === 'true' ? true : value === 'false' ? false : value), z.boolean()).default(defaultValue);
}

export function count() {
  // A number written as text (`--param n=-5`, `n=1.5`) is read as one, so the refusal says what is
  // wrong with the number ("expected number, received string" said the opposite of the truth).
  return z.preprocess((value) => (typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value), z.number().int().min(0));
}

/**
 * How often a long run logs its progress: 1 s to a day. A timer longer than 2^31-1 ms (24.8 days)
 * fires at once in Node, and then on every millisecond: `progressSeconds: 3000000` in a POST made
 * a VACUUM read pg_stat_progress_vacuum and log a line each millisecond.
 */
export function progressSeconds() {
  return count().refine((seconds) => seconds >= 1 && seconds <= 86_400, 'must be 1 to 86400 (a day)').default(10);
}

// Control characters (a NUL ends a PostgreSQL startup packet) and lone UTF-16 surrogates (not
// encodable in a URL or UTF-8) make no valid name anywhere: refused here, before any connection.
const UNUSABLE = /[\u0000-\u001f\u007f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * A non-empty name that came from outside; the action still checks it against the live catalog.
 * Built at load, unlike the params schemas around it: it is one small schema, and as a field of
 * theirs a z.lazy would cost a step on every parse.
 */
export const identifier = z.string().min(1, 'must not be empty').max(255, 'is too long')
  .refine((name) => !UNUSABLE.test(name), 'must not contain control characters or broken Unicode');
