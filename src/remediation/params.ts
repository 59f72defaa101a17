import { z } from 'zod';

// Parameters arrive as JSON (manual POST), as config values, or as text (alert label templates and
// `upkeep run --param k=v`), so booleans and counts also accept their text forms.
export function flag(defaultValue: boolean) {
  return z.preprocess((value) => (value === 'true' ? true : value === 'false' ? false : value), z.boolean()).default(defaultValue);
}

export function count() {
  return z.preprocess((value) => (typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value), z.number().int().min(0));
}

/**
 * A non-empty name that came from outside; the action still checks it against the live catalog.
 * No name upkeep acts on contains a control character, and a NUL byte would otherwise reach
 * PostgreSQL as a bind parameter and fail the run instead of rejecting it.
 */
export const identifier = z.string().min(1, 'must not be empty').max(255, 'is too long').regex(/^[^\u0000-\u001f\u007f]*$/, 'must not contain control characters');
