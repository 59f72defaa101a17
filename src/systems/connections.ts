import type Docker from 'dockerode';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Config } from '../config/schema.js';
import { dockerode, ioredis, postgresDriver } from '../lazy.js';
import { ValidationError } from '../errors.js';

/**
 * Connections for remediations, looked up by the target names in the config. Postgres work gets
 * a dedicated client per run (it sets timeouts, holds advisory locks and may be cancelled);
 * Redis and Docker clients are shared.
 */
export class Connections {
  private readonly redisClients = new Map<string, Redis>();
  private readonly dockerClients = new Map<string, Docker>();

  constructor(private readonly config: Readonly<Config>) {}

  postgresUrl(target: string, database: string): string {
    const entry = this.config.targets.postgres.find((candidate) => candidate.name === target);
    if (!entry) throw new ValidationError(`unknown postgres target "${target}"`);
    const url = new URL(entry.url);
    url.pathname = `/${encodeURIComponent(database)}`;
    return url.toString();
  }

  /** A new, connected client; the caller must end() it. */
  async postgres(target: string, database: string, applicationName = 'upkeep-remediation'): Promise<pg.Client> {
    const client = new (postgresDriver().Client)({ connectionString: this.postgresUrl(target, database), application_name: applicationName });
    client.on('error', () => undefined); // a dropped connection surfaces on the next query instead
    await client.connect();
    return client;
  }

  redis(target: string): Redis {
    const existing = this.redisClients.get(target);
    if (existing) return existing;
    const entry = this.config.targets.redis.find((candidate) => candidate.name === target);
    if (!entry) throw new ValidationError(`unknown redis target "${target}"`);
    const client = new (ioredis().Redis)(entry.url, { lazyConnect: false, maxRetriesPerRequest: 2, enableOfflineQueue: true });
    client.on('error', () => undefined); // reconnects by itself; commands report the failure
    this.redisClients.set(target, client);
    return client;
  }

  docker(target: string): Docker {
    const existing = this.dockerClients.get(target);
    if (existing) return existing;
    const entry = this.config.targets.docker.find((candidate) => candidate.name === target);
    if (!entry) throw new ValidationError(`unknown docker target "${target}"`);
    const Docker = dockerode();
    const client = entry.host
      ? new Docker({ host: entry.host, port: entry.port ?? 2375 })
      : new Docker({ socketPath: entry.socketPath ?? '/var/run/docker.sock' });
    this.dockerClients.set(target, client);
    return client;
  }

  async close(): Promise<void> {
    for (const client of this.redisClients.values()) client.disconnect();
    this.redisClients.clear();
    this.dockerClients.clear();
  }
}
