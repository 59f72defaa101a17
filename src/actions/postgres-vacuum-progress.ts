import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { z } from 'zod';
import { vacuumProgress, type VacuumProgress } from '../systems/postgres/progress.js';
import { explainLockTimeout, withClient } from './postgres-session.js';
import type { ActionContext, RunOutput } from './contract.js';

// A long VACUUM says how far it is: while each planned statement runs, a second session of the
// run reads pg_stat_progress_vacuum for the first one's backend every few seconds, logs it and
// hands it to the engine, which keeps the latest in the run's journal entry.

export interface VacuumRunOutput extends Record<string, unknown> {
  readonly statements: string[];
  /** The last progress read for each statement that ran long enough to be seen. */
  readonly progress: VacuumSeen[];
  /** PostgreSQL's warnings during the statements ("permission denied to vacuum ..., skipping it"), when there were any. */
  readonly warnings?: string[];
}

export interface VacuumSeen { readonly statement: string; readonly phase: string; readonly heapBlocks: number; readonly heapBlocksScanned: number; readonly summary: string }

function seen(statement: string, reading: VacuumProgress): VacuumSeen {
  const { phase, heapBlocks, heapBlocksScanned } = reading;
  return { statement, phase, heapBlocks, heapBlocksScanned, summary: `${statement}: ${phase}, ${heapBlocksScanned}/${heapBlocks} heap blocks scanned` };
}

/** Polls the progress of backend `pid` until `stop` is aborted; returns the last reading. */
async function watch(watcher: pg.Client, pid: number, statement: string, everyMs: number, stop: AbortSignal, context: ActionContext): Promise<VacuumSeen | null> {
  let last: VacuumSeen | null = null;
  for (;;) {
    try {
      await sleep(everyMs, undefined, { signal: stop });
    } catch {
      return last;
    }
    const [reading] = await vacuumProgress(watcher, pid);
    if (reading === undefined || stop.aborted) continue;
    last = seen(statement, reading);
    context.log.info({ statement, phase: last.phase, heapBlocks: last.heapBlocks, heapBlocksScanned: last.heapBlocksScanned }, 'vacuum in progress');
    context.progress?.({ ...last });
  }
}

/** Executes the planned VACUUM statements in order, and nothing else, reporting each one's progress every `progressSeconds`. */
export async function runVacuums(context: ActionContext, params: { target: string; database: string }, statements: readonly string[], what: string, progressSeconds: number): Promise<RunOutput<VacuumRunOutput>> {
  return withClient(context, params.target, params.database, async (client) => withClient(context, params.target, params.database, async (watcher) => {
    const [{ pid }] = z.tuple([z.object({ pid: z.number() })]).parse((await client.query('SELECT pg_backend_pid() AS pid')).rows);
    const executed: string[] = [];
    const progress: VacuumSeen[] = [];
    // A VACUUM the role may not run is skipped with a WARNING, not an error: kept, so the
    // verification that then finds no sign of it can say why.
    const warnings: string[] = [];
    const onNotice = (notice: { severity?: string | undefined; message?: string | undefined }) => {
      if (notice.severity === 'WARNING' && notice.message !== undefined) warnings.push(notice.message);
    };
    client.on('notice', onNotice);
    try {
      for (const statement of statements) {
        if (context.signal.aborted) throw context.signal.reason;
        const stop = new AbortController();
        const watching = watch(watcher, pid, statement, progressSeconds * 1000, stop.signal, context);
        try {
          await client.query(statement);
        } catch (err) {
          throw explainLockTimeout(err, what, context.config.remediation.lockTimeoutSeconds);
        } finally {
          stop.abort();
          const last = await watching.catch(() => null);
          if (last) progress.push(last);
        }
        executed.push(statement);
      }
    } finally {
      client.off('notice', onNotice);
    }
    return { detail: { statements: executed, progress, ...(warnings.length > 0 ? { warnings } : {}) } };
  }));
}
