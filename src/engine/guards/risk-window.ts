import type { Risk } from '../../actions/contract.js';
import type { SkipCode } from '../journal.js';
import { openWindow, type WindowSpec } from '../windows.js';

const RISK_RANK: Readonly<Record<Risk, number>> = { safe: 0, disruptive: 1, destructive: 2 };

export interface Refusal { readonly code: SkipCode; readonly reason: string }

/**
 * The risk gate for automatic runs: anything above safe needs the rule to allow that risk and a
 * maintenance window to be open. Returns the refusal, or null when the run may go ahead.
 */
export function riskGate(risk: Risk, allowRisk: Risk | undefined, window: WindowSpec | null): Refusal | null {
  if (risk === 'safe') return null;
  const allowed = allowRisk ?? 'safe';
  if (RISK_RANK[risk] > RISK_RANK[allowed]) {
    return { code: 'risk', reason: `risk gate: this run is ${risk} and the rule allows only ${allowed} (set allowRisk: ${risk} on the rule to permit it)` };
  }
  if (window === null) {
    return { code: 'window', reason: `risk gate: ${risk} runs from an alert or schedule need an open maintenance window (remediation.windows), and none is open` };
  }
  return null;
}

/** The risk gate against the windows open at `nowMs`. */
export function riskWindowGate(risk: Risk, allowRisk: Risk | undefined, windows: readonly WindowSpec[], nowMs: number): Refusal | null {
  return riskGate(risk, allowRisk, risk === 'safe' ? null : openWindow(windows, nowMs));
}
