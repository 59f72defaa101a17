import { z } from 'zod';
import type { Config } from '../config/schema.js';
import { ValidationError } from '../errors.js';
import type { ActionContext, LockSpec } from './contract.js';
import { identifier } from './params.js';
import { onFirstUse } from '../lazy-schema.js';

// What every Redis remediation family shares: its target, its lock, its number params.
/** A positive number that may arrive as text (`--param minFragmentationRatio=1.5`, alert label templates). */
export function positiveNumber() {
  return z.preprocess((value) => (typeof value === 'string' && /^\d+(\.\d+)?$/.test(value) ? Number(value) : value), z.number().positive());
}

export function requireRedisTarget(config: Readonly<Config>, target: string): Config['targets']['redis'][number] {
  const entry = config.targets.redis.find((candidate) => candidate.name === target);
  if (!entry) throw new ValidationError(`unknown redis target "${target}" (not in targets.redis)`);
  return entry;
}

/**
 * The Redis families' screen: an unknown target is refused before the run is queued (a 400 for a
 * manual run, `ignored` for an alert), as the other families' are, instead of being accepted and
 * journalled as rejected once it ran.
 */
export function screenTarget(params: { readonly target: string }, config: Readonly<Config>): void {
  requireRedisTarget(config, params.target);
}

/** The Redis families' resolve: a configured target is all there is to look up. */
export async function resolveTarget<P extends { readonly target: string }>(params: P, context: ActionContext): Promise<P> {
  requireRedisTarget(context.config, params.target);
  return params;
}

/** The lock lives on the target server itself, so the key only needs to name the work. */
export function redisLock(key: string, target: string): LockSpec {
  return { kind: 'redis', target, key };
}

export const targetParams = onFirstUse(() => z.strictObject({ target: identifier }));
export type TargetParams = z.infer<typeof targetParams>;
