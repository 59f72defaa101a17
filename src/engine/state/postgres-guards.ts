import { claimKey, TICK_TTL_MS } from './guard-file.js';
import { storableText, type StateDb } from './postgres-db.js';
import type { GuardMemory, RunOutcome } from './store.js';

export interface PostgresGuardsOptions {
  /** How long an alert claim holds: after it, a re-delivery runs again (subject to cooldown). */
  readonly claimTtlMs: number;
  readonly cooldownMs: number;
  readonly failureWindowMs: number;
}

/**
 * The guards' memory in PostgreSQL, shared by every replica. Each claim is one statement on a
 * unique key: INSERT … ON CONFLICT DO UPDATE locks the row another replica inserted (waiting for
 * its transaction when it has not committed yet) and returns its holder, so exactly one run
 * wins and every loser learns which. The "update" of a lost claim writes the holder back
 * unchanged; an alert claim past its TTL is taken over in the same statement.
 */
export class PostgresGuards implements GuardMemory {
  constructor(private readonly db: StateDb, private readonly options: PostgresGuardsOptions) {}

  async claimAlert(key: string, runId: string, atMs: number): Promise<string | undefined> {
    const rows = await this.db.query<{ run_id: string }>('claiming an alert', `
      insert into ${this.db.table('alert_claims')} as claim (key, run_id, claimed_ms) values ($1, $2, $3)
      on conflict (key) do update set
        run_id = case when claim.claimed_ms < $4 then excluded.run_id else claim.run_id end,
        claimed_ms = case when claim.claimed_ms < $4 then excluded.claimed_ms else claim.claimed_ms end
      returning run_id`, [claimKey(key), storableText(runId), Math.floor(atMs), Math.floor(atMs - this.options.claimTtlMs)]);
    return holderOther(rows, runId);
  }

  async releaseAlert(key: string, runId: string): Promise<void> {
    await this.db.query('releasing an alert claim', `delete from ${this.db.table('alert_claims')} where key = $1 and run_id = $2`, [claimKey(key), storableText(runId)]);
  }

  async claimTick(job: string, nominalMs: number, runId: string): Promise<string | undefined> {
    const rows = await this.db.query<{ run_id: string }>('claiming a schedule tick', `
      insert into ${this.db.table('tick_claims')} as tick (job, nominal_ms, run_id) values ($1, $2, $3)
      on conflict (job, nominal_ms) do update set run_id = tick.run_id
      returning run_id`, [storableText(job), Math.floor(nominalMs), storableText(runId)]);
    return holderOther(rows, runId);
  }

  async recordOutcome(outcome: RunOutcome): Promise<void> {
    if (outcome.executedLockKey === null && outcome.result === null) return;
    // One statement, so the cooldown, the last success and the failure land together or not at all.
    await this.db.query('recording a run\'s outcome', `
      with executed as (
        insert into ${this.db.table('executions')} as e (lock_key, last_ms) select $4::text, $3::bigint where $4::text is not null
        on conflict (lock_key) do update set last_ms = greatest(e.last_ms, excluded.last_ms)
      ), succeeded as (
        insert into ${this.db.table('successes')} as s (remediation, last_ms) select $1::text, $3::bigint where $5::text = 'success'
        on conflict (remediation) do update set last_ms = greatest(s.last_ms, excluded.last_ms)
      )
      insert into ${this.db.table('failures')} (remediation, at_ms, run_id) select $1::text, $3::bigint, $2::text where $5::text = 'failure'
      on conflict do nothing`,
    [storableText(outcome.remediation), storableText(outcome.runId), Math.floor(outcome.atMs),
      outcome.executedLockKey === null ? null : storableText(outcome.executedLockKey), outcome.result]);
  }

  async lastExecuted(lockKey: string): Promise<number | undefined> {
    const rows = await this.db.query<{ last_ms: string }>('reading a cooldown', `select last_ms from ${this.db.table('executions')} where lock_key = $1`, [storableText(lockKey)]);
    return rows[0] === undefined ? undefined : Number(rows[0].last_ms);
  }

  async recentFailures(remediation: string, sinceMs: number): Promise<number> {
    const rows = await this.db.query<{ failures: number }>('counting failures', `
      select count(*)::integer as failures from ${this.db.table('failures')}
      where remediation = $1 and at_ms > greatest($2::bigint, coalesce((select last_ms from ${this.db.table('successes')} where remediation = $1), $2::bigint))`,
    [storableText(remediation), Math.floor(sinceMs)]);
    return rows[0]?.failures ?? 0;
  }

  async lastSuccesses(): Promise<ReadonlyMap<string, number>> {
    const rows = await this.db.query<{ remediation: string; last_ms: string }>('reading the last successes', `select remediation, last_ms from ${this.db.table('successes')}`);
    return new Map(rows.map((row) => [row.remediation, Number(row.last_ms)]));
  }

  /**
   * Forgets what no guard can need any more: alert claims past their TTL, tick claims a day past
   * their nominal time, executions older than both the cooldown and the claim TTL (as the file
   * store keeps them), failures outside the window or before the last success. The last success
   * of each remediation is kept (one row each).
   */
  async prune(nowMs: number): Promise<void> {
    const { claimTtlMs, cooldownMs, failureWindowMs } = this.options;
    await this.db.query('pruning alert claims', `delete from ${this.db.table('alert_claims')} where claimed_ms < $1`, [Math.floor(nowMs - claimTtlMs)]);
    await this.db.query('pruning tick claims', `delete from ${this.db.table('tick_claims')} where nominal_ms < $1`, [Math.floor(nowMs - TICK_TTL_MS)]);
    await this.db.query('pruning executions', `delete from ${this.db.table('executions')} where last_ms < $1`, [Math.floor(nowMs - Math.max(cooldownMs, claimTtlMs))]);
    await this.db.query('pruning failures', `
      delete from ${this.db.table('failures')} as f where f.at_ms <= $1
        or f.at_ms <= coalesce((select s.last_ms from ${this.db.table('successes')} as s where s.remediation = f.remediation), $1)`,
    [Math.floor(nowMs - failureWindowMs)]);
  }
}

/** The holder a claim statement returned, or undefined when it is `runId` (this run now holds it). */
function holderOther(rows: readonly { run_id: string }[], runId: string): string | undefined {
  const holder = rows[0]?.run_id;
  if (holder === undefined) throw new Error('state.postgres: a claim returned no row');
  return holder === storableText(runId) ? undefined : holder;
}
