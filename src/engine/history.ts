import type { Config } from '../config/schema.js';
import type { GuardMemory } from './state/store.js';
import { circuitOpen } from './guards/circuit.js';
import { cooldownRemaining, type FutureExecutions } from './guards/cooldown.js';
import { consumesAlert, idempotencyKey } from './guards/idempotency.js';
import { isFinished, type RunRecord } from './journal.js';

/**
 * The guards' policy over the state store's memory: which alerts were handled (idempotency), when
 * each (remediation, target object) last executed (cooldown), and recent failures per remediation
 * (circuit breaker). The memory lives in the store, so all three survive a restart (and, with a
 * shared store, hold across replicas).
 */
export class RunHistory {
  private readonly futureExecutions: FutureExecutions = new Map();

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
  cooldownRemaining(lockKey: string, nowMs: number): Promise<number> {
    return cooldownRemaining(this.memory, this.settings.cooldownSeconds, lockKey, nowMs, this.futureExecutions);
  }

  circuitOpen(remediation: string, nowMs: number): Promise<boolean> {
    return circuitOpen(this.memory, this.settings.circuitBreaker, remediation, nowMs);
  }

  /** Whether the failure just recorded is the one that opened the circuit (exactly `failures` in the window now). */
  async circuitJustOpened(remediation: string, nowMs: number): Promise<boolean> {
    const { failures, windowSeconds } = this.settings.circuitBreaker;
    return (await this.memory.recentFailures(remediation, nowMs - windowSeconds * 1000)) === failures;
  }
}
