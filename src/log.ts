import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

// The redaction lives apart from pino, so the CLI can use it before it loads a logger.
export { errorMessage, redactText, redactUrl } from './redact.js';
import { redactText } from './redact.js';

/**
 * The last outcome of something that fails on every scrape until it is fixed: a failure is logged
 * when it first happens or changes, not on every repeat, and its end once.
 */
export class DistinctErrors {
  private last: string | null = null;

  /** Records the outcome (an error message, or null for success); true when it differs from the last one. */
  changed(message: string | null): boolean {
    if (message === this.last) return false;
    this.last = message;
    return true;
  }
}

// Keys whose values are secrets wherever they appear in a logged object.
const SECRET_KEYS = new Set(['authtoken', 'authorization', 'password', 'token', 'passwd', 'secret']);
const MAX_DEPTH = 8;

/**
 * Masks secrets in what is about to be logged. It walks only plain objects and arrays, never
 * class instances (sockets, requests, clients), so it cannot recurse into the runtime's object
 * graph; a cycle or a deep tree is cut off rather than followed.
 */
export function redactValue(value: unknown, depth = 0, seen: WeakSet<object> = new WeakSet()): unknown {
  if (typeof value === 'string') return redactText(value);
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Error) return serializeError(value);
  if (seen.has(value) || depth >= MAX_DEPTH) return '[…]';
  if (Array.isArray(value)) {
    seen.add(value);
    return value.map((item) => redactValue(item, depth + 1, seen));
  }
  if (!isPlainObject(value)) return `[${value.constructor?.name ?? 'object'}]`;
  return redactObject(value, depth, seen);
}

/** A plain object's copy with its secrets masked. */
function redactObject(value: object, depth: number, seen: WeakSet<object>): Record<string, unknown> {
  seen.add(value);
  const out: Record<string, unknown> = {};
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    const child: unknown = Reflect.get(value, key);
    out[key] = SECRET_KEYS.has(key.toLowerCase()) && child !== undefined && child !== '' ? '***' : redactValue(child, depth + 1, seen);
  }
  return out;
}

function isPlainObject(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * An error as JSON: type, message, stack, code, and its own plain fields, all redacted. ioredis
 * errors carry the failed command (`HELLO 3 AUTH user password`), so command arguments are never
 * kept, and neither is Node's `input` (an invalid URL's whole text, password included).
 */
export function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return redactValue(err);
  const out: Record<string, unknown> = { type: err.name, message: redactText(err.message) };
  if (err.stack !== undefined) out.stack = redactText(err.stack);
  for (const [key, child] of Object.entries(err)) {
    if (key === 'command' || key === 'args' || key === 'previousErrors' || key === 'input') continue;
    out[key] = redactValue(child, 1);
  }
  const command: unknown = Reflect.get(err, 'command');
  if (command !== null && typeof command === 'object') {
    const name: unknown = Reflect.get(command, 'name');
    if (typeof name === 'string') out.command = name;
  }
  if (err.cause !== undefined) out.cause = err.cause instanceof Error ? serializeError(err.cause) : redactValue(err.cause, 1);
  return out;
}

export function createLogger(options: { level?: string; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      formatters: { log: (object) => redactRecord(object) },
      serializers: { err: serializeError, error: serializeError },
    },
    options.destination,
  );
}

function redactRecord(object: Record<string, unknown>): Record<string, unknown> {
  // The usual case, a plain object, is copied once.
  if (isPlainObject(object)) return redactObject(object, 0, new WeakSet());
  const redacted = redactValue(object);
  return redacted !== null && typeof redacted === 'object' && !Array.isArray(redacted) ? { ...redacted } : {};
}

/** A request's path for the log: the query's values are masked (a client may put anything there). */
export function loggedPath(url: string): string {
  const question = url.indexOf('?');
  if (question < 0) return url;
  const keys = url.slice(question + 1).split('&').filter((part) => part !== '').map((part) => `${part.split('=')[0] ?? ''}=***`);
  return `${url.slice(0, question)}?${keys.join('&')}`;
}
