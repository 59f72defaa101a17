import { createHash, randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { Connections } from '../systems/connections.js';
import type { LockSpec } from '../actions/contract.js';
import { HOST } from './state/owner.js';

/**
 * A Redis lock's TTL. Short, and renewed while the run lives (every third of it), so a replica that
 * crashes or loses Redis frees its locks within it instead of at the run's deadline.
 */
export const REDIS_LOCK_TTL_MS = 30_000;

/** A held lock; release() is safe to call more than once. */
export interface HeldLock {
  readonly description: string;
  release(): Promise<void>;
}

/** The 64-bit advisory lock key for a lock name: the first 8 bytes of its SHA-256, as a signed bigint. */
export function advisoryKey(name: string): bigint {
  return createHash('sha256').update(`upkeep:${name}`).digest().readBigInt64BE(0);
}

// Deletes the key only when it still holds our token, so a lock that expired and was taken by
// another replica is never released by us.
const RELEASE_IF_OWNER = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
// SET … XX PX rather than PEXPIRE: the ACL of docs/security.md already grants SET.
const RENEW_IF_OWNER = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('set', KEYS[1], ARGV[1], 'XX', 'PX', ARGV[2]) else return 0 end";

/** A Redis lock's value: who holds it (run, host, pid), then a random part so only its owner's value matches. */
function redisLockValue(runId: string): string {
  return `${runId} ${HOST} ${process.pid} ${randomUUID()}`;
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

/**
 * One run per (remediation, target object), in this process and across replicas: a local set
 * first (cheap, and covers runs with no shared system), then the target's own lock.
 */
export class Locks {
  private readonly local = new Set<string>();

  constructor(private readonly connections: Connections, private readonly redisTtlMs = REDIS_LOCK_TTL_MS) {}

  /** The lock for the run `runId`, or null when someone else holds it. */
  async acquire(spec: LockSpec, runId: string): Promise<HeldLock | null> {
    const localKey = spec.kind === 'local' ? spec.key : spec.kind === 'postgres' ? `postgres:${spec.target}:${spec.database}:${spec.key}` : `redis:${spec.target}:${spec.key}`;
    if (this.local.has(localKey)) return null;
    this.local.add(localKey);
    const releaseLocal = () => { this.local.delete(localKey); };
    try {
      const shared = await this.acquireShared(spec, runId);
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
    if (spec.kind !== 'redis') return null;
    const redis = await this.connections.redis(spec.target);
    return redisLockHolder(await redis.get(redisLockKey(spec.key)));
  }

  private async acquireShared(spec: LockSpec, runId: string): Promise<HeldLock | null> {
    if (spec.kind === 'postgres') return this.acquirePostgres(spec);
    if (spec.kind === 'redis') return this.acquireRedis(spec, runId);
    return { description: `local lock ${spec.key}`, release: async () => undefined };
  }

  // A session-level advisory lock lives as long as its connection, so a crashed replica's lock
  // disappears with its connection instead of blocking everyone until a TTL.
  private async acquirePostgres(spec: Extract<LockSpec, { kind: 'postgres' }>): Promise<HeldLock | null> {
    const key = advisoryKey(spec.key);
    const client: pg.Client = await this.connections.postgres(spec.target, spec.database, 'upkeep-lock');
    try {
      const result = await client.query<{ locked: boolean }>('select pg_try_advisory_lock($1::bigint) as locked', [key.toString()]);
      if (!result.rows[0]?.locked) {
        await client.end();
        return null;
      }
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    return {
      description: `pg_advisory_lock(${key}) on ${spec.target}/${spec.database} for ${spec.key}`,
      release: async () => {
        try {
          await client.query('select pg_advisory_unlock($1::bigint)', [key.toString()]);
        } finally {
          await client.end();
        }
      },
    };
  }

  private async acquireRedis(spec: Extract<LockSpec, { kind: 'redis' }>, runId: string): Promise<HeldLock | null> {
    const redis = await this.connections.redis(spec.target);
    const key = redisLockKey(spec.key);
    const token = redisLockValue(runId);
    const ttlMs = this.redisTtlMs;
    const result = await redis.set(key, token, 'PX', ttlMs, 'NX');
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
        await redis.eval(RELEASE_IF_OWNER, 1, key, token);
      },
    };
  }
}
