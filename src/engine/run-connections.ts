import type pg from 'pg';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { Connections } from '../systems/connections.js';
import { catalogReadsOf, type CatalogReads } from '../systems/postgres/catalog-reads.js';
import { connectPooled, type ConnectCancel } from '../systems/postgres/client.js';
import { runApplicationName } from './locks.js';

interface TrackedClient {
  readonly client: pg.Client;
  readonly target: string;
  readonly database: string;
  readonly pid: number;
  /** Lets the session go at the end of the run: closes it, or gives it back to its pool (unless `aborted`). */
  readonly close: (aborted: boolean) => Promise<void>;
  broken: boolean;
}

interface Timeouts { readonly statementMs: number; readonly lockMs: number }

// What each pooled dry-run session's statement_timeout and lock_timeout were last set to.
const POOLED_TIMEOUTS = new WeakMap<pg.Client, Timeouts>();

/**
 * A pooled session whose timeouts, set for an earlier dry run, already end every statement before
 * this run's deadline, and at most a tenth of its time sooner, keeps them: one round trip less per
 * session a dry run borrows (a third of a dry run's statements were these settings). A dry run
 * only reads the catalog, in statements of milliseconds, so ending them a little early costs nothing.
 */
function boundEnough(kept: Timeouts | undefined, wanted: Timeouts): boolean {
  const within = (have: number, want: number) => have <= want && have >= want * 0.9;
  return kept !== undefined && within(kept.statementMs, wanted.statementMs) && within(kept.lockMs, wanted.lockMs);
}

/** Sets the session's timeouts (and remembers them, for a pooled one); its backend's pid. */
async function setTimeouts(client: pg.Client, timeouts: Timeouts): Promise<number> {
  const result = await client.query<{ pid: number }>(
    "select pg_backend_pid() as pid, set_config('statement_timeout', $1, false), set_config('lock_timeout', $2, false)",
    [`${timeouts.statementMs}ms`, `${timeouts.lockMs}ms`],
  );
  POOLED_TIMEOUTS.set(client, timeouts);
  return result.rows[0]?.pid ?? 0;
}

/** The application_name of the pooled sessions dry runs read the catalog with. */
export const DRY_RUN_APPLICATION = 'upkeep-dry-run';

// After pg_cancel_backend, how long a statement gets to unwind before its backend is terminated.
const CANCEL_GRACE_MS = 2000;

/**
 * The connections one run sees. Every Postgres client it opens gets statement_timeout and
 * lock_timeout bounded by the run's deadline, and is tracked, so that at the deadline the engine
 * can cancel (then terminate) its backends from a second connection, and at the end of the run
 * no backend of ours is left behind. Redis and Docker clients are the engine's shared ones.
 *
 * A dry run takes its Postgres sessions from a pool per (target, database) shared by every dry
 * run, named DRY_RUN_APPLICATION, instead of opening sessions tagged with its run id. The tag
 * exists so that before taking a lock, a run can find the backends a dead run left working (a
 * VACUUM goes on after its client is gone) and terminate them. A dry run takes no lock and
 * executes nothing: it only reads the catalog, statement by statement under its deadline's
 * statement_timeout, so it can leave nothing working that a lock would have to wait for, and a
 * session that held nothing can serve the next dry run. Opening a session (a backend forked,
 * authenticated and its catalog caches warmed) was most of a dry run's cost.
 */
export class RunConnections extends Connections {
  private readonly tracked: TrackedClient[] = [];
  private readonly idle = new Map<string, TrackedClient[]>();
  private closed = false;

  constructor(
    private readonly settings: Readonly<Config>,
    private readonly shared: Connections,
    private readonly deadline: number,
    private readonly lockTimeoutMs: number,
    private readonly log: Logger,
    private readonly runId: string,
    private readonly dryRun = false,
    // The run's abort: a connection still being made when it comes is given up at once.
    private readonly cancel?: ConnectCancel,
  ) {
    super(settings);
  }

  /** A session of the run's own (tagged for it, ended with it), or for a dry run one lent by the dry runs' pool. */
  private async open(target: string, database: string, applicationName: string): Promise<{ client: pg.Client; close: (discard: boolean) => Promise<void> }> {
    if (!this.dryRun) {
      // The run's deadline (or a shutdown) aborts a connection attempt at once, through `cancel`.
      const client = await this.shared.postgres(target, database, applicationName, this.cancel ? { cancel: this.cancel } : {});
      // The client's own end(): postgres() makes end() hand the session back to the run.
      const end = client.end.bind(client);
      return { client, close: () => end() };
    }
    const client = await connectPooled(this.dryRunPool(target, database), this.cancel);
    const end = client.end;
    return {
      client,
      close: (discard) => {
        client.end = end;
        // A session that failed, or whose run was cut off mid-statement, is closed rather than lent again.
        client.release(discard);
        return Promise.resolve();
      },
    };
  }

  /**
   * The sessions dry runs borrow. At most one per run and (target, database), but an action may
   * open a second one while it holds the first: room for two per run, so runs never wait on each
   * other here, and for the two reads they share (catalogReads).
   */
  private dryRunPool(target: string, database: string): pg.Pool {
    const { dryRunConcurrency, timeoutSeconds } = this.settings.remediation;
    return this.shared.postgresPool(target, database, DRY_RUN_APPLICATION, { max: 2 * dryRunConcurrency + 2, idleCloseMs: 10_000, timeoutSeconds });
  }

  override catalogReads(target: string, database: string): CatalogReads | null {
    return this.dryRun ? catalogReadsOf(this.dryRunPool(target, database)) : null;
  }

  /** Each backend is tagged `upkeep:<runId>` (unless asked otherwise), so a replica can cut off what a dead run left working. */
  override async postgres(target: string, database: string, applicationName = runApplicationName(this.runId)): Promise<pg.Client> {
    const key = `${target}\u0000${database}\u0000${applicationName}`;
    const idle = this.idle.get(key) ?? [];
    let reusable = idle.pop();
    while (reusable?.broken) reusable = idle.pop();
    if (reusable) return reusable.client;
    const { client, close } = await this.open(target, database, applicationName);
    const remainingMs = Math.max(1, Math.floor(this.deadline - Date.now()));
    const timeouts = { statementMs: remainingMs, lockMs: Math.min(remainingMs, this.lockTimeoutMs) };
    try {
      // Bounded by this run's deadline, also on a pooled session: no statement outlives the run.
      const pid = this.dryRun && boundEnough(POOLED_TIMEOUTS.get(client), timeouts) ? 0 : await setTimeouts(client, timeouts);
      const onError = () => { entry.broken = true; };
      const entry: TrackedClient = {
        client, target, database, pid, broken: false,
        close: (aborted) => {
          client.off('error', onError);
          return close(entry.broken || aborted);
        },
      };
      client.on('error', onError);
      // An action's end() hands the session back to this run instead of closing it: the run's next
      // step reuses it (one connection per run, not one per step) and close() lets it go for real.
      client.end = (() => {
        this.idle.set(key, [...(this.idle.get(key) ?? []), entry]);
        return Promise.resolve();
      }) as typeof client.end;
      this.tracked.push(entry);
      return client;
    } catch (err) {
      await close(true).catch(() => undefined);
      throw err;
    }
  }

  override redis(target: string) {
    return this.shared.redis(target);
  }

  override docker(target: string) {
    return this.shared.docker(target);
  }

  /**
   * The backends this run still has open. A dry run's come from the pool and go back to it when
   * the run ends, so they are never signalled (another run may hold one by then): its
   * statement_timeout ends the statement at the deadline, and close() discards the session.
   */
  openBackends(): { target: string; database: string; pid: number }[] {
    if (this.closed || this.dryRun) return [];
    return this.tracked.map(({ target, database, pid }) => ({ target, database, pid }));
  }

  /** The deadline passed: cancel what our backends are doing; terminate any that are still busy after a grace period. */
  async cancelBackends(): Promise<void> {
    await this.signalBackends('pg_cancel_backend');
    await new Promise((resolve) => setTimeout(resolve, CANCEL_GRACE_MS).unref());
    await this.signalBackends('pg_terminate_backend', true);
  }

  private async signalBackends(fn: 'pg_cancel_backend' | 'pg_terminate_backend', onlyBusy = false): Promise<void> {
    const groups = new Map<string, { target: string; database: string; pids: number[] }>();
    for (const backend of this.openBackends()) {
      const key = `${backend.target}\u0000${backend.database}`;
      const group = groups.get(key) ?? { target: backend.target, database: backend.database, pids: [] };
      group.pids.push(backend.pid);
      groups.set(key, group);
    }
    for (const group of groups.values()) {
      try {
        const admin = await this.shared.postgres(group.target, group.database, 'upkeep-canceller');
        try {
          const busy = onlyBusy ? " and state <> 'idle'" : '';
          await admin.query(`select ${fn}(pid) from pg_stat_activity where pid = any($1::int[])${busy}`, [group.pids]);
        } finally {
          await admin.end();
        }
      } catch (err) {
        this.log.error({ err, target: group.target, database: group.database, pids: group.pids }, `${fn} failed; backends may still be running`);
      }
    }
  }

  /** Ends every connection the run opened (a dry run's go back to their pool, unless the run was `aborted`). */
  override async close(aborted = false): Promise<void> {
    this.closed = true;
    this.idle.clear();
    // Once: a dry run closes its connections itself (RunSteps.dryRun), and the pipeline's close follows.
    const closing = this.tracked.splice(0);
    await Promise.all(closing.map((entry) => entry.close(aborted).catch(() => undefined)));
  }
}
