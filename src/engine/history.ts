import type { Config } from '../config/schema.js';
import type { GuardMemory } from './state/store.js';
import { isFinished } from './journal.js';
import type { AlertRef, Risk, RunRecord, SkipCode } from '../actions/contract.js';
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
 * The guards' policy over the state store's memory: which alerts were handled (idempotency), when
 * each (remediation, target object) last executed (cooldown), and recent failures per remediation
 * (circuit breaker). The memory lives in the store, so all three survive a restart (and, with a
 * shared store, hold across replicas).
 */
export class RunHistory {
  constructor(private readonly settings: Readonly<Config['remediation']>, private readonly memory: GuardMemory) {}

  /** Rebuilds the memory from journal records (a journal from before the store kept it), in the order they were written. */
  async replay(records: AsyncIterable<RunRecord> | Iterable<RunRecord>): Promise<void> {
    for await (const record of records) {
      if (record.alert) {
        const key = idempotencyKey(record.alert, record.remediation);
        if (consumesAlert(record)) await this.memory.claimAlert(key, record.id, Date.parse(record.queuedAt) || 0);
        else await this.memory.releaseAlert(key, record.id);
      }
      if (isFinished(record.status)) await this.recordFinish(record);
    }
  }

  /** Claims an alert for a run; returns the run that already has it, if any. */
  claimAlert(key: string, runId: string, nowMs: number): Promise<string | undefined> {
    return this.memory.claimAlert(key, runId, nowMs);
  }

  releaseAlert(key: string, runId: string): Promise<void> {
    return this.memory.releaseAlert(key, runId);
  }

  async recordFinish(record: RunRecord): Promise<void> {
    const at = Date.parse(record.finishedAt ?? '');
    if (Number.isNaN(at)) return;
    const executed = (record.status === 'success' || record.status === 'failure') && record.lockKey !== undefined && !record.dryRun;
    // A success closes the circuit: the remediation works again (often after an operator's manual run).
    const result = record.status === 'success' ? 'success' : record.status === 'failure' ? 'failure' : null;
    await this.memory.recordOutcome({ remediation: record.remediation, runId: record.id, atMs: at, executedLockKey: executed ? record.lockKey ?? null : null, result });
  }

  /** Seconds left before this (remediation, target object) may run automatically again; 0 when free. */
  async cooldownRemaining(lockKey: string, nowMs: number): Promise<number> {
    const last = await this.memory.lastExecuted(lockKey);
    if (last === undefined) return 0;
    return Math.max(0, Math.ceil((last + this.settings.cooldownSeconds * 1000 - nowMs) / 1000));
  }

  async circuitOpen(remediation: string, nowMs: number): Promise<boolean> {
    const recent = await this.memory.recentFailures(remediation, nowMs - this.settings.circuitBreaker.windowSeconds * 1000);
    return recent >= this.settings.circuitBreaker.failures;
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
