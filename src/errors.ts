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
