import type pg from 'pg';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { Connections } from '../systems/connections.js';
import { runApplicationName } from './locks.js';

interface TrackedClient {
  readonly client: pg.Client;
  readonly target: string;
  readonly database: string;
  readonly pid: number;
  /** Really closes the connection (the client's own end()). */
  readonly close: () => Promise<void>;
  broken: boolean;
}

// After pg_cancel_backend, how long a statement gets to unwind before its backend is terminated.
const CANCEL_GRACE_MS = 2000;

/**
 * The connections one run sees. Every Postgres client it opens gets statement_timeout and
 * lock_timeout bounded by the run's deadline, and is tracked, so that at the deadline the engine
 * can cancel (then terminate) its backends from a second connection, and at the end of the run
 * no backend of ours is left behind. Redis and Docker clients are the engine's shared ones.
 */
export class RunConnections extends Connections {
  private readonly tracked: TrackedClient[] = [];
  private readonly idle = new Map<string, TrackedClient[]>();
  private closed = false;

  constructor(
    config: Readonly<Config>,
    private readonly shared: Connections,
    private readonly deadline: number,
    private readonly lockTimeoutMs: number,
    private readonly log: Logger,
    private readonly runId: string,
  ) {
    super(config);
  }

  /** Each backend is tagged `upkeep:<runId>` (unless asked otherwise), so a replica can cut off what a dead run left working. */
  override async postgres(target: string, database: string, applicationName = runApplicationName(this.runId)): Promise<pg.Client> {
    const key = `${target}\u0000${database}\u0000${applicationName}`;
    const idle = this.idle.get(key) ?? [];
    let reusable = idle.pop();
    while (reusable?.broken) reusable = idle.pop();
    if (reusable) return reusable.client;
    const client = await this.shared.postgres(target, database, applicationName);
    const remainingMs = Math.max(1, Math.floor(this.deadline - Date.now()));
    const lockTimeoutMs = Math.min(remainingMs, this.lockTimeoutMs);
    try {
      const result = await client.query<{ pid: number }>(
        "select pg_backend_pid() as pid, set_config('statement_timeout', $1, false), set_config('lock_timeout', $2, false)",
        [`${remainingMs}ms`, `${lockTimeoutMs}ms`],
      );
      const entry: TrackedClient = { client, target, database, pid: result.rows[0]?.pid ?? 0, close: client.end.bind(client), broken: false };
      client.on('error', () => { entry.broken = true; });
      // An action's end() hands the session back to this run instead of closing it: the run's next
      // step reuses it (one connection per run, not one per step) and close() ends it for real.
      client.end = (() => {
        this.idle.set(key, [...(this.idle.get(key) ?? []), entry]);
        return Promise.resolve();
      }) as typeof client.end;
      this.tracked.push(entry);
      return client;
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
  }

  override redis(target: string) {
    return this.shared.redis(target);
  }

  override docker(target: string) {
    return this.shared.docker(target);
  }

  /** The backends this run still has open. */
  openBackends(): { target: string; database: string; pid: number }[] {
    if (this.closed) return [];
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

  /** Ends every connection the run opened. */
  override async close(): Promise<void> {
    this.closed = true;
    this.idle.clear();
    await Promise.all(this.tracked.map((entry) => entry.close().catch(() => undefined)));
  }
}
