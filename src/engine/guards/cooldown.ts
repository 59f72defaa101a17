import type { GuardMemory } from '../state/store.js';
import type { Refusal } from './risk-window.js';

/** Seconds left before this (remediation, target object) may run automatically again; 0 when free. */
export async function cooldownRemaining(memory: GuardMemory, cooldownSeconds: number, lockKey: string, nowMs: number): Promise<number> {
  const last = await memory.lastExecuted(lockKey);
  if (last === undefined) return 0;
  return Math.max(0, Math.ceil((last + cooldownSeconds * 1000 - nowMs) / 1000));
}

export function cooldownRefusal(lockKey: string, cooldownSeconds: number, remaining: number): Refusal {
  return { code: 'cooldown', reason: `cooldown: ${lockKey} ran less than ${cooldownSeconds}s ago; ${remaining}s left` };
}
