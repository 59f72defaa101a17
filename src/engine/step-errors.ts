import { z } from 'zod';
import { PartialWork } from '../actions/contract.js';
import { ValidationError } from '../errors.js';
import { serializeError } from '../log.js';
import { SKIP_CODES } from './journal.js';
import { ShutDown, Stop } from './stop.js';
import { onFirstUse } from '../lazy-schema.js';

/**
 * An error thrown by a step on the executor thread, as it crosses to the pipeline. Structured
 * cloning keeps an Error's message but not its class, and the pipeline decides a run's status by
 * the class (skipped, rejected, interrupted, failed with partial work), so the class travels as
 * `kind` and the error is made again on this side. The message is the original text: the
 * pipeline masks secrets in it when it journals it, as it does for an inline run.
 */
export const stepErrorSchema = onFirstUse(() => z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('stop'), status: z.enum(['skipped', 'cancelled']), reason: z.string(), code: z.enum(SKIP_CODES).optional() }),
  z.object({ kind: z.literal('validation'), message: z.string() }),
  z.object({ kind: z.literal('shutdown'), message: z.string() }),
  z.object({ kind: z.literal('partial'), message: z.string(), done: z.record(z.string(), z.unknown()) }),
  // `fields`: the error's own fields as the log serializes them (already redacted): pg's SQLSTATE
  // and detail, ioredis's command name. What the pipeline and its debug line read of an error.
  z.object({ kind: z.literal('error'), name: z.string(), message: z.string(), fields: z.record(z.string(), z.unknown()) }),
]));
export type StepError = z.infer<typeof stepErrorSchema>;

export function toStepError(err: unknown): StepError {
  if (err instanceof Stop) return { kind: 'stop', status: err.status, reason: err.reason, ...(err.code ? { code: err.code } : {}) };
  if (err instanceof ValidationError) return { kind: 'validation', message: err.message };
  if (err instanceof ShutDown) return { kind: 'shutdown', message: err.message };
  if (err instanceof PartialWork) return { kind: 'partial', message: err.message, done: { ...err.done } };
  if (err instanceof Error) {
    const serialized = serializeError(err);
    const fields: Record<string, unknown> = {};
    if (serialized !== null && typeof serialized === 'object') {
      for (const [key, value] of Object.entries(serialized)) if (key !== 'type' && key !== 'message' && key !== 'stack') fields[key] = value;
    }
    return { kind: 'error', name: err.name, message: err.message, fields };
  }
  return { kind: 'error', name: 'Error', message: String(err), fields: {} };
}

export function fromStepError(error: StepError): Error {
  switch (error.kind) {
    case 'stop': return new Stop(error.status, error.reason, error.code);
    case 'validation': return new ValidationError(error.message);
    case 'shutdown': return new ShutDown(error.message);
    case 'partial': return new PartialWork(new Error(error.message), error.done);
    case 'error': {
      const made = new Error(error.message);
      made.name = error.name;
      // The serializer logs a command by its name only: give it the shape it reads.
      for (const [key, value] of Object.entries(error.fields)) Reflect.set(made, key, key === 'command' && typeof value === 'string' ? { name: value } : value);
      return made;
    }
  }
}
