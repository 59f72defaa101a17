import { plainMessage } from './errors.js';

// Passwords inside connection URLs (user:password@ and ?password=) are masked wherever a URL is logged.
const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*:)[^@\s/]+@/gi;
const QUERY_SECRET = /([?&](?:password|sslpassword|passfile|token|auth|secret)=)[^&\s"']*/gi;

// Each pattern runs only on text that has what it needs ('://', '=', ':'): every string of every
// log line passes through here, and most have none of them.
export function redactUrl(text: string): string {
  const urls = text.includes('://') ? text.replace(URL_PASSWORD, '$1***@') : text;
  return urls.includes('=') ? urls.replace(QUERY_SECRET, '$1***') : urls;
}

// Redis quotes a refused command's arguments in its reply ("ERR unknown command 'HELLO', with args
// beginning with: '3' 'AUTH' 'upkeep' 'PASSWORD'", which is what a Redis 5 answers ioredis's HELLO).
const REDIS_ARGS = /(with args beginning with:)[^\n]*/gi;

/** Free text about to leave upkeep (a log line, an error in the journal, /readyz): URLs and Redis command arguments masked. */
export function redactText(text: string): string {
  const urls = redactUrl(text);
  return urls.includes(':') ? urls.replace(REDIS_ARGS, '$1 ***') : urls;
}

/** An error's message, safe to show anywhere (lastError, the journal's `error`, CLI output). */
export function errorMessage(err: unknown): string {
  return redactText(err instanceof Error ? plainMessage(err) : String(err));
}
