import { z } from 'zod';

/**
 * The field shapes every config section is built from, target schemas included. Every object is
 * strict: a typo in a key is an error, never a silently ignored setting.
 */
export const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'must be letters, digits, ".", "_" or "-"');

// Node's timers hold at most 2^31-1 ms (24.8 days) and fire at once beyond it; every seconds
// value ends up in a timer somewhere, so each is capped well below that.
const MAX_TIMER_SECONDS = 2_000_000;
export const seconds = z.number().positive().max(MAX_TIMER_SECONDS, `must be at most ${MAX_TIMER_SECONDS} (about 23 days)`);
/** seconds, or 0 for "every time". */
export const secondsOrZero = z.number().min(0).max(MAX_TIMER_SECONDS, `must be at most ${MAX_TIMER_SECONDS} (about 23 days)`);

/**
 * A URL that parses: an unparseable one would fail later with an error carrying the whole URL, and
 * its password with it. The message never echoes the value.
 */
export const parseableUrl = (scheme: RegExp, message: string) => z.string().regex(scheme, { message, abort: true })
  .refine((text) => URL.canParse(text), 'must be a valid URL (percent-encode special characters in the user name and password)');
