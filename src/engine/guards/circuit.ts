import type { Config } from '../../config/schema.js';
import type { GuardMemory } from '../state/store.js';
import type { Refusal } from './risk-window.js';

type CircuitBreaker = Config['remediation']['circuitBreaker'];

/** Open when the remediation failed `failures` or more times within the window. */
export async function circuitOpen(memory: GuardMemory, breaker: Readonly<CircuitBreaker>, remediation: string, nowMs: number): Promise<boolean> {
  const recent = await memory.recentFailures(remediation, nowMs - breaker.windowSeconds * 1000);
  return recent >= breaker.failures;
}

export function circuitRefusal(remediation: string, breaker: Readonly<CircuitBreaker>): Refusal {
  return {
    code: 'circuit',
    reason: `circuit open: ${remediation} failed ${breaker.failures} or more times in the last ${breaker.windowSeconds}s; automatic runs are refused until it succeeds (run it manually) or the failures age out`,
  };
}
