import { z } from 'zod';

const ENCODE = 'percent-encode special characters in the user name and password ("@" as %40, "#" as %23, "/" as %2F, ":" as %3A, "?" as %3F, "%" as %25)';

/**
 * What a database or Redis URL with a '#' is told. It never quotes the URL: the part after the
 * '#' is often the rest of a password.
 */
export const FRAGMENT_MESSAGE = `must not contain "#": a URL ends its host at "#", so an unencoded "#" or "@" in the password sends part of it to DNS and the logs as the host; ${ENCODE}`;

/** What one with an '@' in its path is told, for the same reason. */
export const PATH_AT_MESSAGE = `must not contain "@" after the host: a URL ends its host at "/", so an unencoded "/" and "@" in the password send part of it to DNS and the logs as the host; ${ENCODE}`;

/** The path: what follows the authority (which ends at the first "/", "?" or "#") up to the query. */
function pathOf(text: string): string {
  const rest = text.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\//, '');
  const slash = rest.search(/[/?#]/);
  if (slash === -1 || rest[slash] !== '/') return '';
  const path = rest.slice(slash);
  const query = path.search(/[?#]/);
  return query === -1 ? path : path.slice(0, query);
}

/**
 * `url`, first refusing a '#' anywhere in it. `postgres://u:P@ss#word@db/app` parses as user "u",
 * password "P", host "ss" and the fragment "#word@db/app": the URL is valid, and the drivers
 * dialled "ss" (getaddrinfo ENOTFOUND ss in /readyz and the logs), and check-config showed it
 * as the state store's host. No database or Redis URL has any use for a fragment (an encoded '#'
 * is %23), so one is refused outright rather than guessed at. Checked before `url`'s own checks,
 * so such a URL gets this one message, which says how to fix it.
 */
export function withoutFragment(url: z.ZodType<string, string>): z.ZodType<string, string> {
  return z.string()
    .refine((text) => !text.includes('#'), { message: FRAGMENT_MESSAGE, abort: true })
    // `postgres://u:x@y/z@db/app` is user "u", password "x", host "y" and the path "/z@db/app". An
    // '@' in a query is a legitimate `?password=p@ss`; in a path (the database) it is this mistake.
    .refine((text) => !pathOf(text).includes('@'), { message: PATH_AT_MESSAGE, abort: true })
    .pipe(url);
}
