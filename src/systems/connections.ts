import type Docker from 'dockerode';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { CatalogReads } from './postgres/catalog-reads.js';
import { ValidationError } from '../errors.js';
import { dockerClient } from './docker/client.js';
import type { DockerTarget } from './docker/target.js';
import { connectClient, createPool, databaseUrl, endPool, type ConnectOptions } from './postgres/client.js';
import type { PostgresTarget } from './postgres/target.js';
import { createRedisClient, firstConnection } from './redis/client.js';
import type { RedisTarget } from './redis/target.js';

/**
 * Connections for remediations, looked up by the target names in the config, through each system's
 * one client factory. Postgres work gets a dedicated client per run (it sets timeouts, holds
 * advisory locks and may be cancelled); Redis and Docker clients are shared.
 */
/** The part of the config connections are made from (systems do not import the config). */
export interface ConnectionTargets {
  readonly targets: {
    readonly postgres: readonly PostgresTarget[];
    readonly redis: readonly RedisTarget[];
    readonly docker: readonly DockerTarget[];
  };
}

/** How many sessions a pool keeps per (target, database), and how long an idle one stays open. */
export interface PoolLimits {
  readonly max: number;
  readonly idleCloseMs: number;
  readonly timeoutSeconds: number;
}

export class Connections {
  private readonly pools = new Map<string, pg.Pool>();
  private readonly redisClients = new Map<string, Promise<Redis>>();
  private readonly dockerClients = new Map<string, Docker>();

  constructor(private readonly config: ConnectionTargets) {}

  postgresUrl(target: string, database: string): string {
    const entry = this.config.targets.postgres.find((candidate) => candidate.name === target);
    if (!entry) throw new ValidationError(`unknown postgres target "${target}"`);
    return databaseUrl(entry.url, database);
  }

  /** A new, connected client; the caller must end() it. */
  async postgres(target: string, database: string, applicationName = 'upkeep-remediation', options?: ConnectOptions): Promise<pg.Client> {
    return connectClient(this.postgresUrl(target, database), applicationName, options);
  }

  /**
   * The (target, database)'s pool of sessions named `applicationName`, made with `limits` on first
   * use. For work that holds nothing in its session between uses (no lock, no setting another
   * user relies on), so sessions can go from one run to the next instead of one being opened each.
   */
  postgresPool(target: string, database: string, applicationName: string, limits: PoolLimits): pg.Pool {
    const url = this.postgresUrl(target, database);
    const key = `${applicationName}\u0000${url}`;
    const existing = this.pools.get(key);
    if (existing) return existing;
    const pool = createPool({ url, applicationName, ...limits });
    this.pools.set(key, pool);
    return pool;
  }

  /**
   * Catalog reads made once for the dry runs that ask at about the same moment (CatalogReads);
   * null where each run reads on sessions of its own.
   */
  catalogReads(_target: string, _database: string): CatalogReads | null {
    return null;
  }

  /** The target's shared client; it reconnects by itself, and a command run while it is down reports the failure. */
  redis(target: string): Promise<Redis> {
    const existing = this.redisClients.get(target);
    if (existing) return existing;
    const entry = this.config.targets.redis.find((candidate) => candidate.name === target);
    if (!entry) return Promise.reject(new ValidationError(`unknown redis target "${target}"`));
    const client = createRedisClient(entry, { lazyConnect: false, maxRetriesPerRequest: 2, enableOfflineQueue: true }).then((created) => {
      created.on('error', () => undefined); // reconnects by itself; commands report the failure
      return firstConnection(created);
    });
    // A CA file that cannot be read now, or a certificate refused now, may be fine by the next run: do not keep the failure.
    client.catch(() => this.redisClients.delete(target));
    this.redisClients.set(target, client);
    return client;
  }

  docker(target: string): Docker {
    const existing = this.dockerClients.get(target);
    if (existing) return existing;
    const entry = this.config.targets.docker.find((candidate) => candidate.name === target);
    if (!entry) throw new ValidationError(`unknown docker target "${target}"`);
    const client = dockerClient(entry);
    this.dockerClients.set(target, client);
    return client;
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((pool) => endPool(pool).catch(() => undefined)));
    const clients = await Promise.allSettled(this.redisClients.values());
    for (const client of clients) if (client.status === 'fulfilled') client.value.disconnect();
    this.redisClients.clear();
    this.dockerClients.clear();
  }
}
