import type { GuardMemory } from '../state/store.js';
import type { Refusal } from './risk-window.js';

/**
 * Executions recorded later than the clock now says (it was ahead then, or stepped back since), by
 * lock key: when this process first saw each. Such a time would hold the cooldown until real time
 * reached it, months after a clock that was a year ahead; it counts from when it was seen instead.
 */
export type FutureExecutions = Map<string, { readonly last: number; readonly seenMs: number }>;

/** Seconds left before this (remediation, target object) may run automatically again; 0 when free. */
export async function cooldownRemaining(memory: GuardMemory, cooldownSeconds: number, lockKey: string, nowMs: number, future: FutureExecutions = new Map()): Promise<number> {
  const last = await memory.lastExecuted(lockKey);
  if (last === undefined) return 0;
  let from = last;
  if (last > nowMs) {
    const seen = future.get(lockKey);
    from = seen?.last === last ? seen.seenMs : nowMs;
    if (seen?.last !== last) future.set(lockKey, { last, seenMs: nowMs });
  } else {
    future.delete(lockKey);
  }
  return Math.max(0, Math.ceil((from + cooldownSeconds * 1000 - nowMs) / 1000));
}

export function cooldownRefusal(lockKey: string, cooldownSeconds: number, remaining: number): Refusal {
  return { code: 'cooldown', reason: `cooldown: ${lockKey} ran less than ${cooldownSeconds}s ago; ${remaining}s left` };
}
