import { createHash, randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { Connections } from '../systems/connections.js';
import type { LockSpec } from '../actions/contract.js';

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

  constructor(private readonly connections: Connections) {}

  /** The lock, or null when someone else holds it. */
  async acquire(spec: LockSpec, ttlMs: number): Promise<HeldLock | null> {
    const localKey = spec.kind === 'local' ? spec.key : spec.kind === 'postgres' ? `postgres:${spec.target}:${spec.database}:${spec.key}` : `redis:${spec.target}:${spec.key}`;
    if (this.local.has(localKey)) return null;
    this.local.add(localKey);
    const releaseLocal = () => { this.local.delete(localKey); };
    try {
      const shared = await this.acquireShared(spec, ttlMs);
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

  private async acquireShared(spec: LockSpec, ttlMs: number): Promise<HeldLock | null> {
    if (spec.kind === 'postgres') return this.acquirePostgres(spec);
    if (spec.kind === 'redis') return this.acquireRedis(spec, ttlMs);
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

  private async acquireRedis(spec: Extract<LockSpec, { kind: 'redis' }>, ttlMs: number): Promise<HeldLock | null> {
    const redis = await this.connections.redis(spec.target);
    const key = redisLockKey(spec.key);
    const token = randomUUID();
    const result = await redis.set(key, token, 'PX', Math.max(1000, Math.ceil(ttlMs)), 'NX');
    if (result !== 'OK') return null;
    return {
      description: `SET ${key} NX PX ${ttlMs} on ${spec.target}`,
      release: async () => { await redis.eval(RELEASE_IF_OWNER, 1, key, token); },
    };
  }
}
