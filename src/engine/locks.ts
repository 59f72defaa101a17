import type pg from 'pg';
import type { Connections } from '../systems/connections.js';
import type { LockSpec } from '../actions/contract.js';
import { nodeCrypto } from '../lazy.js';
import type { Logger } from '../log.js';
import type { RunLiveness } from './leases.js';
import { HOST } from './state/owner.js';

/** A held lock; release() is safe to call more than once. */
export interface HeldLock {
  readonly description: string;
  release(): Promise<void>;
}

/** The 64-bit advisory lock key for a lock name: the first 8 bytes of its SHA-256, as a signed bigint. */
export function advisoryKey(name: string): bigint {
  return nodeCrypto().createHash('sha256').update(`upkeep:${name}`).digest().readBigInt64BE(0);
}

// Deletes the key only when it still holds our token, so a lock that expired and was taken by
// another replica is never released by us.
const RELEASE_IF_OWNER = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
// SET … XX PX rather than PEXPIRE: the ACL of docs/security.md already grants SET.
const RENEW_IF_OWNER = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('set', KEYS[1], ARGV[1], 'XX', 'PX', ARGV[2]) else return 0 end";

/** A Redis lock's value: who holds it (run, host, pid), then a random part so only its owner's value matches. */
function redisLockValue(runId: string): string {
  return `${runId} ${HOST} ${process.pid} ${nodeCrypto().randomUUID()}`;
}

/** The holder a Redis lock's value names, or null for a value upkeep did not write. */
export function redisLockHolder(value: string | null): string | null {
  const parts = value?.split(' ') ?? [];
  return parts.length === 4 ? `run ${parts[0]} on ${parts[1]} (pid ${parts[2]})` : null;
}

/** The (remediation, target object) a lock stands for, as journalled and used for cooldowns. */
export function lockName(remediation: string, spec: LockSpec): string {
  const where = spec.kind === 'postgres' ? `${spec.target}/${spec.database}` : spec.kind === 'redis' ? spec.target : 'local';
  return `${remediation} ${spec.kind}:${where}:${spec.key}`;
}

export function redisLockKey(name: string): string {
  return `upkeep:lock:${name}`;
}

/** The application_name of every backend a run opens, so any replica can find (and cut off) what a dead run left running. */
export function runApplicationName(runId: string): string {
  return `upkeep:${runId}`;
}

const RUN_APPLICATION = /^upkeep:(.+)$/;
// How long pg_terminate_backend waits for a dead run's backend to be gone.
const TERMINATE_WAIT_MS = 5000;

export interface LocksOptions {
  /**
   * A Redis lock's TTL (`remediation.redisLockTtlSeconds`). Short, and renewed while the run lives
   * (every third of it), so a replica that crashes or loses Redis frees its locks within it
   * instead of at the run's deadline.
   */
  readonly redisTtlMs: number;
  /** Tells a dead run's tagged backends from a live one's; without it, tagged backends are not looked at. */
  readonly liveness?: RunLiveness;
  readonly log?: Logger;
}

/**
 * One run per (remediation, target object), in this process and across replicas: a local set
 * first (cheap, and covers runs with no shared system), then the target's own lock.
 */
export class Locks {
  private readonly local = new Set<string>();
  private readonly redisTtlMs: number;
  /** Why the last refused acquire of a lock name was refused, when the lock itself does not say (a dead run's backend still working). */
  private readonly refusals = new Map<string, string>();

  constructor(private readonly connections: Connections, private readonly options: LocksOptions) {
    this.redisTtlMs = options.redisTtlMs;
  }

  /**
   * The lock for the run `runId`, or null when someone else holds it. `lockKey` (the lock's name,
   * lockName()) lets a Postgres lock find the backends an earlier run of it left working.
   */
  async acquire(spec: LockSpec, runId: string, lockKey?: string): Promise<HeldLock | null> {
    const localKey = spec.kind === 'local' ? spec.key : spec.kind === 'postgres' ? `postgres:${spec.target}:${spec.database}:${spec.key}` : `redis:${spec.target}:${spec.key}`;
    if (this.local.has(localKey)) return null;
    this.local.add(localKey);
    const releaseLocal = () => { this.local.delete(localKey); };
    try {
      const shared = await this.acquireShared(spec, runId, lockKey);
      if (shared === null) {
        releaseLocal();
        return null;
      }
      let released = false;
      return {
        description: shared.description,
        release: async () => {
          if (released) return;
          released = true;
          try {
            await shared.release();
          } finally {
            releaseLocal();
          }
        },
      };
    } catch (err) {
      releaseLocal();
      throw err;
    }
  }

  /** Who holds a lock that acquire() did not get, where the lock says (a Redis lock); null when it does not. */
  async holder(spec: LockSpec): Promise<string | null> {
    if (spec.kind === 'postgres') return this.postgresHolder(spec);
    if (spec.kind !== 'redis') return null;
    const redis = await this.connections.redis(spec.target);
    return redisLockHolder(await redis.get(redisLockKey(spec.key)));
  }

  private async acquireShared(spec: LockSpec, runId: string, lockKey: string | undefined): Promise<HeldLock | null> {
    if (spec.kind === 'postgres') return this.acquirePostgres(spec, runId, lockKey);
    if (spec.kind === 'redis') return this.acquireRedis(spec, runId);
    return { description: `local lock ${spec.key}`, release: async () => undefined };
  }

  // A session-level advisory lock lives as long as its connection, so a crashed replica's lock
  // disappears with its connection instead of blocking everyone until a TTL. Its work may not:
  // a VACUUM goes on after its client is gone. So once granted, the lock looks for backends an
  // earlier run of it left (tagged upkeep:<runId>): a live run's mean the lock is not ours yet;
  // a dead run's (finished, or its owner's lease expired) are terminated first.
  private async acquirePostgres(spec: Extract<LockSpec, { kind: 'postgres' }>, runId: string, lockKey: string | undefined): Promise<HeldLock | null> {
    const key = advisoryKey(spec.key);
    const client: pg.Client = await this.connections.postgres(spec.target, spec.database, runApplicationName(runId));
    try {
      const result = await client.query<{ locked: boolean }>('select pg_try_advisory_lock($1::bigint) as locked', [key.toString()]);
      if (!result.rows[0]?.locked) {
        this.refusals.delete(spec.key);
        await client.end();
        return null;
      }
      const blocker = lockKey === undefined ? null : await this.clearDeadRuns(client, runId, lockKey);
      if (blocker !== null) {
        this.refusals.set(spec.key, blocker);
        await client.end();
        return null;
      }
      this.refusals.delete(spec.key);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    // The session gone (its server restarted, its backend terminated): PostgreSQL let the lock go
    // with it, so there is nothing to release. Before, each restart during a run logged
    // "releasing the lock failed" at error, with a stack, beside the run's own failure.
    let lost = false;
    const markLost = () => { lost = true; };
    client.once('end', markLost);
    // A dead socket is an 'error' first (pg then refuses every query: "Client has encountered a
    // connection error and is not queryable") and an 'end' after: a release between the two
    // failed (seen once in CI, the release racing the backend's termination).
    client.on('error', markLost);
    return {
      description: `pg_advisory_lock(${key}) on ${spec.target}/${spec.database} for ${spec.key}`,
      release: async () => {
        if (lost) return;
        try {
          await client.query('select pg_advisory_unlock($1::bigint)', [key.toString()]);
        } catch (err) {
          if (!lost) throw err;
        } finally {
          await client.end();
        }
      },
    };
  }

  /**
   * Terminates the backends that dead runs of this lock left working; answers the run that still
   * owns one (a live run, or a dead one whose backend would not go), or null when none is left.
   */
  private async clearDeadRuns(client: pg.Client, runId: string, lockKey: string): Promise<string | null> {
    const { liveness, log } = this.options;
    if (!liveness) return null;
    const { rows } = await client.query<{ pid: number; application_name: string }>(
      "select pid, application_name from pg_stat_activity where application_name like 'upkeep:%' and application_name <> $1 and pid <> pg_backend_pid()",
      [runApplicationName(runId)],
    );
    const byRun = new Map<string, number[]>();
    for (const row of rows) {
      const id = RUN_APPLICATION.exec(row.application_name)?.[1];
      if (id !== undefined) byRun.set(id, [...(byRun.get(id) ?? []), row.pid]);
    }
    if (byRun.size === 0) return null;
    for (const { record, alive } of await liveness.judge([...byRun.keys()])) {
      // Only a run of this very lock matters. Its lock key is journalled with its plan; a run that
      // has not planned has not started the work this lock guards (and other runs of the same
      // remediation, on other objects, must never block this one).
      if (record.lockKey !== lockKey) continue;
      const holder = `run ${record.id} on ${record.host ?? '?'} (pid ${record.pid ?? '?'})`;
      if (alive) return `${holder} is still working on it`;
      const pids = byRun.get(record.id) ?? [];
      const { rows: ended } = await client.query<{ ended: boolean }>(
        'select pg_terminate_backend(pid, $2) as ended from unnest($1::int[]) as pid', [pids, TERMINATE_WAIT_MS],
      );
      log?.warn({ deadRunId: record.id, status: record.status, pids }, 'terminated the backends of a run whose owner is gone before taking its lock');
      if (ended.some((row) => !row.ended)) return `${holder}, whose owner is gone, still has a backend that would not terminate`;
    }
    return null;
  }

  /** Who holds a Postgres lock: the run whose tagged session holds the advisory lock, or whose backend was still working at the last refusal. */
  private async postgresHolder(spec: Extract<LockSpec, { kind: 'postgres' }>): Promise<string | null> {
    const refusal = this.refusals.get(spec.key);
    if (refusal !== undefined) return refusal;
    const key = advisoryKey(spec.key);
    const client = await this.connections.postgres(spec.target, spec.database, 'upkeep-lock-holder');
    try {
      // A bigint advisory key is held as two 32-bit halves: classid the high one, objid the low one.
      const { rows } = await client.query<{ application_name: string; pid: number }>(`
        select a.application_name, a.pid from pg_locks l join pg_stat_activity a on a.pid = l.pid
        where l.locktype = 'advisory' and l.granted and l.objsubid = 1 and l.database = (select oid from pg_database where datname = current_database())
          and l.classid = (($1::bigint >> 32) & 4294967295)::oid and l.objid = ($1::bigint & 4294967295)::oid`, [key.toString()]);
      const row = rows[0];
      if (!row) return null;
      const runId = RUN_APPLICATION.exec(row.application_name)?.[1];
      return runId === undefined ? `backend pid ${row.pid}` : `run ${runId}, backend pid ${row.pid}`;
    } finally {
      await client.end();
    }
  }

  private async acquireRedis(spec: Extract<LockSpec, { kind: 'redis' }>, runId: string): Promise<HeldLock | null> {
    const redis = await this.connections.redis(spec.target);
    const key = redisLockKey(spec.key);
    const token = redisLockValue(runId);
    const ttlMs = this.redisTtlMs;
    const result = await redis.set(key, token, 'PX', ttlMs, 'NX').catch((err: unknown) => { throw lockRefused(err, key); });
    if (result !== 'OK') return null;
    // Each renewal asks for the connection again, so one after a brief outage reconnects; a renewal
    // that fails is tried again at the next one. If Redis stays away past the TTL the lock is gone,
    // as it should be for everyone.
    const renew = async () => { await (await this.connections.redis(spec.target)).eval(RENEW_IF_OWNER, 1, key, token, ttlMs); };
    const renewal = setInterval(() => { renew().catch(() => undefined); }, ttlMs / 3);
    renewal.unref();
    return {
      description: `SET ${key} NX PX ${ttlMs} on ${spec.target}, renewed every ${ttlMs / 3000}s`,
      release: async () => {
        clearInterval(renewal);
        await redis.eval(RELEASE_IF_OWNER, 1, key, token).catch((err: unknown) => { throw lockRefused(err, key); });
      },
    };
  }
}

/**
 * ACL refusals name neither the key nor why upkeep wanted it ("NOPERM this user has no
 * permissions to run the 'set' command"): the lock key and the grant that fixes it are added,
 * when it is taken and when it is let go (a renewal's failure is only retried).
 */
function lockRefused(err: unknown, key: string): unknown {
  if (!(err instanceof Error) || !err.message.startsWith('NOPERM')) return err;
  return new Error(`the remediation's lock ${key}: ${err.message}; the ACL user needs +set +get +eval on ~upkeep:lock:* (docs/security.md)`, { cause: err });
}
