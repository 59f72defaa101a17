/** Rejected input: the engine journals it and answers 400 / skips, never runs anything. */
export class ValidationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ValidationError';
  }
}

/** The `code` of a system, network or driver error (`ENOENT`, `EADDRINUSE`, a SQLSTATE), if it has one. */
export function errorCode(err: unknown): string | undefined {
  const code: unknown = err !== null && typeof err === 'object' ? Reflect.get(err, 'code') : undefined;
  return typeof code === 'string' ? code : undefined;
}

/**
 * PostgreSQL's "permission denied …" (SQLSTATE 42501) with what the refused step needs, which its
 * words never say ("permission denied for table events" for a missing UPDATE); other errors as
 * they are.
 */
export function withPrivilegeNeeded(err: unknown, needs: string): unknown {
  if (errorCode(err) !== '42501' || !(err instanceof Error)) return err;
  return new Error(`${err.message}: ${needs}`, { cause: err });
}

// ioredis's words when a command's retries ran out while the connection was down.
const REDIS_RETRIES = /^Reached the max retries per request limit \(which is (\d+)\)\. Refer to "maxRetriesPerRequest" option for details\.$/;

/**
 * An error's message, in words that say what happened. ioredis's "Reached the max retries per
 * request limit (which is 2). Refer to "maxRetriesPerRequest" option for details." was a run's
 * whole error after a Redis restart: it named neither Redis nor the lost connection, and pointed at
 * an option upkeep's users cannot set.
 */
export function plainMessage(err: Error): string {
  // node-postgres's words when sslmode asks for TLS (prefer included) and the server has none.
  if (err.message === 'The server does not support SSL connections') return 'the server does not support SSL connections: the URL\'s sslmode asks for TLS (libpq\'s prefer falls back to none, upkeep\'s does not); set sslmode=disable to connect without it';
  const retries = REDIS_RETRIES.exec(err.message);
  if (retries) return `lost the connection to Redis and it did not come back while the command was retried ${retries[1]} times (was the server restarted or stopped?)`;
  return err.message;
}
