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

// Format characters (Unicode category Cf) are invisible: bidi controls (U+202A-U+202E,
// U+2066-U+2069, U+200E, U+200F), zero-width spaces and joiners (U+200B-U+200D, U+2060), U+FEFF.
// They pass as text everywhere, but on a screen "ev\u202eents" reads "evstne": in a log line, the
// journal or a terminal a name can pose as another or reorder what follows it. No name that
// upkeep acts on needs one.
const FORMAT = /\p{Cf}/u;

/**
 * A non-empty name that came from outside; the action still checks it against the live catalog.
 * Built at load, unlike the params schemas around it: it is one small schema, and as a field of
 * theirs a z.lazy would cost a step on every parse.
 */
export const identifier = z.string().min(1, 'must not be empty').max(255, 'is too long')
  .refine((name) => !UNUSABLE.test(name), 'must not contain control characters or broken Unicode')
  .superRefine((name, ctx) => {
    const format = FORMAT.exec(name);
    if (format !== null) ctx.addIssue({ code: 'custom', message: `must not contain invisible Unicode format characters (${codePoint(format[0])}): they make a name display as another` });
  });

/** U+XXXX: an invisible character named, so that it can be found. */
function codePoint(character: string): string {
  return `U+${(character.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}
