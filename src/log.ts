import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

// Passwords inside connection URLs are masked wherever a URL is logged.
const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*:)[^@\s/]+@/gi;

export function redactUrl(text: string): string {
  return text.replace(URL_PASSWORD, '$1***@');
}

export function createLogger(options: { level?: string; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      redact: {
        paths: ['authToken', '*.authToken', 'req.headers.authorization', 'headers.authorization', 'password', '*.password', 'token', '*.token'],
        censor: '***',
      },
      formatters: {
        log(object) {
          return redactDeep(object) as Record<string, unknown>;
        },
      },
      serializers: { err: serializeError },
    },
    options.destination,
  );
}

function serializeError(err: unknown): unknown {
  // Usually already serialized (and redacted) by the log formatter above.
  return redactDeep(err);
}

function redactDeep(value: unknown): unknown {
  if (typeof value === 'string') return redactUrl(value);
  // pino applies formatters.log before serializers, and an Error has no enumerable fields:
  // serialize it here or its message and stack would be logged as {}.
  if (value instanceof Error) return redactDeep(pino.stdSerializers.err(value));
  if (Array.isArray(value)) return value.map(redactDeep);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(value)) out[key] = redactDeep(child);
    return out;
  }
  return value;
}
