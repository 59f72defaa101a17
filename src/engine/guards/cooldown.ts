import type { GuardMemory } from '../state/store.js';
import type { Refusal } from './risk-window.js';

/**
 * Executions recorded later than the clock now says (it was ahead then, or stepped back since), by
 * lock key: when this process first saw each. Such a time would hold the cooldown until real time
 * reached it, months after a clock that was a year ahead; it counts from when it was seen instead.
 */
export type FutureExecutions = Map<string, { readonly last: number; readonly seenMs: number }>;

/** Seconds left before this (remediation, target object) may run automatically again; 0 when free. */
export async function cooldownRemaining(memory: GuardMemory, cooldownSeconds: number, lockKey: string, nowMs: number, future: FutureExecutions): Promise<number> {
  const last = await memory.lastExecuted(lockKey);
  if (last === undefined) return 0;
  const leftFrom = (fromMs: number) => Math.max(0, Math.ceil((fromMs + cooldownSeconds * 1000 - nowMs) / 1000));
  if (last <= nowMs) {
    future.delete(lockKey);
    return leftFrom(last);
  }
  let seen = future.get(lockKey);
  if (seen?.last !== last) {
    seen = { last, seenMs: nowMs };
    future.set(lockKey, seen);
  }
  return leftFrom(seen.seenMs);
}

export function cooldownRefusal(lockKey: string, cooldownSeconds: number, remaining: number): Refusal {
  return { code: 'cooldown', reason: `cooldown: ${lockKey} ran less than ${cooldownSeconds}s ago; ${remaining}s left` };
}
