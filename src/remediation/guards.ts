import type { Config } from '../config/schema.js';
import { isFinished } from './journal.js';
import type { AlertRef, Risk, RunRecord, SkipCode } from './types.js';
import type { WindowSpec } from './windows.js';

/** The identity of an alert delivery for one remediation: a re-delivery has the same key. */
export function idempotencyKey(alert: AlertRef, remediation: string): string {
  return JSON.stringify([alert.fingerprint, alert.startsAt, remediation]);
}

// Refusals that depend on when the alert arrived: a later re-delivery (inside a window, after the
// cooldown, with the circuit closed again) may run, so these do not use up the alert.
const RETRYABLE_SKIPS: ReadonlySet<SkipCode> = new Set(['risk', 'window', 'circuit', 'cooldown']);

export function consumesAlert(record: RunRecord): boolean {
  if (!record.alert || record.status === 'duplicate') return false;
  return !(record.status === 'skipped' && record.skipCode !== undefined && RETRYABLE_SKIPS.has(record.skipCode));
}

/**
 * What the engine remembers between runs: which alerts were handled (idempotency), when each
 * (remediation, target object) last executed (cooldown), and recent failures per remediation
 * (circuit breaker). Rebuilt from the journal at start, so all three survive a restart.
 */
export class RunHistory {
  private readonly alerts = new Map<string, string>();
  private readonly lastExecuted = new Map<string, number>();
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly settings: Readonly<Config['remediation']>) {}

  /** Replays finished runs in the order they finished. */
  replay(records: Iterable<RunRecord>): void {
    const list = [...records];
    for (const record of list) {
      if (consumesAlert(record) && record.alert) this.alerts.set(idempotencyKey(record.alert, record.remediation), record.id);
    }
    const finished = list.filter((record) => isFinished(record.status) && record.finishedAt !== undefined)
      .sort((a, b) => Date.parse(a.finishedAt ?? '') - Date.parse(b.finishedAt ?? ''));
    for (const record of finished) this.recordFinish(record);
  }

  /** Claims an alert for a run; returns the run that already has it, if any. */
  claimAlert(key: string, runId: string): string | undefined {
    const existing = this.alerts.get(key);
    if (existing !== undefined) return existing;
    this.alerts.set(key, runId);
    return undefined;
  }

  releaseAlert(key: string, runId: string): void {
    if (this.alerts.get(key) === runId) this.alerts.delete(key);
  }

  recordFinish(record: RunRecord): void {
    const at = Date.parse(record.finishedAt ?? '');
    if (Number.isNaN(at)) return;
    const executed = (record.status === 'success' || record.status === 'failure') && record.lockKey !== undefined && !record.dryRun;
    if (executed && record.lockKey !== undefined) this.lastExecuted.set(record.lockKey, Math.max(at, this.lastExecuted.get(record.lockKey) ?? 0));
    // A success closes the circuit: the remediation works again (often after an operator's manual run).
    if (record.status === 'success') this.failures.delete(record.remediation);
    if (record.status === 'failure') this.failures.set(record.remediation, [...(this.failures.get(record.remediation) ?? []), at]);
  }

  /** Seconds left before this (remediation, target object) may run automatically again; 0 when free. */
  cooldownRemaining(lockKey: string, nowMs: number): number {
    const last = this.lastExecuted.get(lockKey);
    if (last === undefined) return 0;
    return Math.max(0, Math.ceil((last + this.settings.cooldownSeconds * 1000 - nowMs) / 1000));
  }

  recentFailures(remediation: string, nowMs: number): number {
    const since = nowMs - this.settings.circuitBreaker.windowSeconds * 1000;
    const recent = (this.failures.get(remediation) ?? []).filter((at) => at > since);
    if (recent.length === 0) this.failures.delete(remediation);
    else this.failures.set(remediation, recent);
    return recent.length;
  }

  circuitOpen(remediation: string, nowMs: number): boolean {
    return this.recentFailures(remediation, nowMs) >= this.settings.circuitBreaker.failures;
  }
}

const RISK_RANK: Readonly<Record<Risk, number>> = { safe: 0, disruptive: 1, destructive: 2 };

/**
 * The risk gate for automatic runs: anything above safe needs the rule to allow that risk and a
 * maintenance window to be open. Returns the refusal, or null when the run may go ahead.
 */
export function riskGate(risk: Risk, allowRisk: Risk | undefined, window: WindowSpec | null): { code: SkipCode; reason: string } | null {
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
