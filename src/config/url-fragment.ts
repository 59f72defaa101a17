import { z } from 'zod';

/**
 * What a database or Redis URL with a '#' is told. It never quotes the URL: the part after the
 * '#' is often the rest of a password.
 */
export const FRAGMENT_MESSAGE = 'must not contain "#": a URL ends its host at "#", so an unencoded "#" or "@" in the password sends part of it to DNS and the logs as the host; percent-encode special characters in the user name and password ("@" as %40, "#" as %23, "/" as %2F, ":" as %3A, "?" as %3F, "%" as %25)';

/**
 * `url`, first refusing a '#' anywhere in it. `postgres://u:P@ss#word@db/app` parses as user "u",
 * password "P", host "ss" and the fragment "#word@db/app": the URL is valid, and the drivers
 * dialled "ss" (getaddrinfo ENOTFOUND ss in /readyz and the logs), and check-config showed it
 * as the state store's host. No database or Redis URL has any use for a fragment (an encoded '#'
 * is %23), so one is refused outright rather than guessed at. Checked before `url`'s own checks,
 * so such a URL gets this one message, which says how to fix it.
 */
export function withoutFragment(url: z.ZodType<string, string>): z.ZodType<string, string> {
  return z.string().refine((text) => !text.includes('#'), { message: FRAGMENT_MESSAGE, abort: true }).pipe(url);
}
