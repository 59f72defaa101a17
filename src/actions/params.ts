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
