import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { Action } from './contract.js';
import { redisLock, resolveTarget, screenTarget, targetParams, type TargetParams } from './redis-target.js';

async function slowlogLength(redis: Redis): Promise<number> {
  return z.number().int().min(0).parse(await redis.slowlog('LEN'));
}

/** The server run() resets the slow log of. */
export interface SlowlogResetPayload { readonly target: string }

/**
 * SLOWLOG RESET: empties the slow log once its entries have been looked at (RedisSlowlogGrowing),
 * so the next slow command stands out. The worked example of docs/development.md.
 */
export const slowlogReset: Action<TargetParams, SlowlogResetPayload, { entriesBefore: number; reset: string }> = {
  name: 'redis.slowlog_reset',
  description: 'SLOWLOG RESET, emptying the slow log so new slow commands stand out.',
  riskClass: 'safe (forgets logged slow commands; no data is touched)',
  params: targetParams,
  risk: () => 'safe',
  screen: screenTarget,
  resolve: resolveTarget,
  lock: (params) => redisLock('redis.slowlog_reset', params.target),
  async check(params, context) {
    const entries = await slowlogLength(await context.connections.redis(params.target));
    if (entries === 0) return { proceed: false, reason: 'the slow log is empty', observed: { entries } };
    return { proceed: true, reason: `the slow log holds ${entries} entries`, observed: { entries } };
  },
  async plan(params) {
    return { steps: [{ kind: 'redis', detail: 'SLOWLOG RESET' }], payload: { target: params.target } };
  },
  async run(_params, payload, context) {
    const redis = await context.connections.redis(payload.target);
    const entriesBefore = await slowlogLength(redis);
    const reset = String(await redis.slowlog('RESET'));
    return { detail: { entriesBefore, reset } };
  },
  async verify(params, _before, output, context) {
    const entries = await slowlogLength(await context.connections.redis(params.target));
    // A command slower than slowlog-log-slower-than may land right after the reset; none should be left from before.
    const ok = output.detail.reset === 'OK' && entries === 0;
    return { ok, detail: `SLOWLOG RESET ${output.detail.reset}; SLOWLOG LEN ${output.detail.entriesBefore} -> ${entries}`, observed: { entries } };
  },
};
