import type pg from 'pg';
import { ValidationError } from '../errors.js';
import { pgErrorCode } from '../systems/postgres/catalog.js';
import type { ActionContext, PlanStep, RunOutput } from './contract.js';

// The session every Postgres family runs its SQL in: a client of the run, and its plan executed as planned.
/** Runs `work` on a fresh client of the run (timeouts set, tracked for cancellation), and ends it. */
export async function withClient<T>(context: ActionContext, target: string, database: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  let client: pg.Client;
  try {
    client = await context.connections.postgres(target, database);
  } catch (err) {
    if (pgErrorCode(err) === '3D000') throw new ValidationError(`database ${JSON.stringify(database)} does not exist on postgres target "${target}"`);
    throw err;
  }
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Turns Postgres' lock-timeout error into one that says what to do. */
export function explainLockTimeout(err: unknown, what: string, lockTimeoutSeconds: number): unknown {
  if (pgErrorCode(err) !== '55P03') return err;
  return new Error(`could not lock ${what} within lock_timeout (${lockTimeoutSeconds}s): another session holds a conflicting lock; find it in pg_locks and retry when it is gone (${(err as Error).message})`);
}

export function where(params: { target: string; database: string }): string {
  return `${params.target}/${params.database}`;
}

export function sqlSteps(statements: readonly string[]): PlanStep[] {
  return statements.map((detail) => ({ kind: 'sql', detail }));
}

/** Runs the plan's statements exactly as planned (and as a dry run showed them). */
export async function runPlan(context: ActionContext, params: { target: string; database: string }, plan: readonly PlanStep[], what: string): Promise<RunOutput> {
  return withClient(context, params.target, params.database, async (client) => {
    const executed: string[] = [];
    for (const step of plan) {
      if (context.signal.aborted) throw context.signal.reason;
      try {
        await client.query(step.detail);
      } catch (err) {
        throw explainLockTimeout(err, what, context.config.remediation.lockTimeoutSeconds);
      }
      executed.push(step.detail);
    }
    return { detail: { statements: executed } };
  });
}
