import type pg from 'pg';
import { ValidationError } from '../errors.js';
import { errorMessage } from '../log.js';
import { pgErrorCode } from '../systems/postgres/catalog.js';
import { READ_ALL_STATS } from '../systems/postgres/horizon.js';
import type { ActionContext, Plan, RunOutput } from './contract.js';

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

const SEES_SESSIONS = `SELECT ${READ_ALL_STATS} AS sees`;

/**
 * What a run that found no session to blame adds when its role cannot see other roles' sessions
 * (PostgreSQL hides their state and transactions without pg_read_all_stats): '' when it can.
 */
export async function hiddenSessionsNote(client: pg.Client): Promise<string> {
  const { rows: [row] } = await client.query<{ sees: boolean }>(SEES_SESSIONS);
  return row?.sees === true ? '' : ' (this role cannot see other roles\' sessions: grant it pg_read_all_stats, see docs/security.md)';
}

/** Turns Postgres' lock-timeout error into one that says what to do. */
export function explainLockTimeout(err: unknown, what: string, lockTimeoutSeconds: number): unknown {
  if (pgErrorCode(err) !== '55P03') return err;
  return new Error(`could not lock ${what} within lock_timeout (${lockTimeoutSeconds}s): another session holds a conflicting lock; find it in pg_locks and retry when it is gone (${errorMessage(err)})`);
}

export function where(params: { target: string; database: string }): string {
  return `${params.target}/${params.database}`;
}

/** The SQL families' payload: the statements, in order, exactly as they are executed. */
export interface SqlPayload { readonly statements: readonly string[] }
/** What a run of planned statements did: the statements executed, in order. */
export type SqlOutput = { statements: string[] };

export function sqlPlan(statements: readonly string[]): Plan<SqlPayload> {
  return { steps: statements.map((detail) => ({ kind: 'sql', detail })), payload: { statements } };
}

/** Executes the planned statements, in order, and nothing else. */
export async function runStatements(context: ActionContext, params: { target: string; database: string }, payload: SqlPayload, what: string): Promise<RunOutput<SqlOutput>> {
  return withClient(context, params.target, params.database, async (client) => {
    const executed: string[] = [];
    for (const statement of payload.statements) {
      if (context.signal.aborted) throw context.signal.reason;
      try {
        await client.query(statement);
      } catch (err) {
        throw explainLockTimeout(err, what, context.config.remediation.lockTimeoutSeconds);
      }
      executed.push(statement);
    }
    return { detail: { statements: executed } };
  });
}
