import { readFile } from 'node:fs/promises';
import type { Redis, RedisOptions } from 'ioredis';
import { ioredis } from '../../lazy.js';

/** Where a Redis is: its URL (password, ACL user, TLS with rediss://, database number) and, for a private CA, its certificate. */
export interface RedisEndpoint {
  readonly url: string;
  /** CA certificate (PEM) for rediss:// servers signed by a private CA. */
  readonly caFile?: string | undefined;
}

/**
 * The one place a Redis client is made, for scrapes and remediations alike: the URL carries the
 * credentials, TLS and database; a caFile is trusted for rediss:// servers signed by a private CA.
 * Each caller brings its own retry and timeout policy in `options`.
 */
export async function createRedisClient(endpoint: RedisEndpoint, options: RedisOptions): Promise<Redis> {
  const tls = endpoint.caFile && endpoint.url.startsWith('rediss:') ? { tls: { ca: await readFile(endpoint.caFile) } } : {};
  return new (ioredis().Redis)(endpoint.url, { ...options, ...tls });
}

/**
 * A TLS failure (an untrusted or mismatched certificate, a failed handshake) as a message that
 * says so and what to do; null for any other error. Retrying does not fix these, so a client that
 * would retry them hides the cause behind its own "max retries" error.
 */
export function tlsProblem(err: Error): string | null {
  const code = 'code' in err && typeof err.code === 'string' ? err.code : '';
  if (!/CERT|SIGNATURE|^ERR_TLS_|^ERR_SSL_/.test(code)) return null;
  return `TLS: ${err.message} (${code}); for a server signed by a private CA, set the target's caFile to that CA's certificate`;
}

/**
 * The client once its first connection attempt has settled: ready, or failed in a way its retries
 * and commands will report (a server not up yet). A TLS failure, which retrying cannot fix,
 * rejects with a message that names it, and the client is disconnected.
 */
export function firstConnection(client: Redis): Promise<Redis> {
  if (client.status === 'ready') return Promise.resolve(client);
  return new Promise((resolve, reject) => {
    const settle = (err: Error | null) => {
      client.off('ready', onReady);
      client.off('error', onError);
      const problem = err === null ? null : tlsProblem(err);
      if (problem === null) {
        resolve(client);
        return;
      }
      client.disconnect();
      reject(new Error(problem, { cause: err }));
    };
    const onReady = () => settle(null);
    const onError = (err: Error) => settle(err);
    client.on('ready', onReady);
    client.on('error', onError);
  });
}

export interface RedisConnectionOptions extends RedisEndpoint {
  readonly timeoutSeconds: number;
  readonly connectionName: string;
}

/**
 * One ioredis client that reconnects when it is next used rather than on a timer: with no retry
 * strategy a lost connection ends, commands fail at once (no offline queue), and the next scrape
 * connects again. A target that comes back is therefore up on the very next scrape, and a dead
 * one costs no background reconnect loop. The URL carries the password, ACL user, TLS (rediss://)
 * and database number; ioredis reads them all from it.
 */
export class RedisConnection {
  private client: Promise<Redis> | null = null;
  private connecting: Promise<void> | null = null;
  private lastError: Error | null = null;

  constructor(private readonly options: RedisConnectionOptions) {}

  /** The client, connected. */
  async ready(): Promise<Redis> {
    // A CA file that cannot be read now may be readable on the next scrape: do not keep the failure.
    this.client ??= this.create().catch((err: unknown) => { this.client = null; throw err; });
    const client = await this.client;
    if (client.status !== 'ready') {
      this.lastError = null;
      this.connecting ??= client.connect()
        // ioredis rejects with "Connection is closed."; the error event before it says why (WRONGPASS, ECONNREFUSED, a certificate).
        .catch((err: unknown) => { throw this.lastError ?? err; })
        .finally(() => { this.connecting = null; });
      await this.connecting;
    }
    return client;
  }

  async close(): Promise<void> {
    const client = await this.client?.catch(() => null);
    client?.disconnect();
  }

  private async create(): Promise<Redis> {
    const { url, timeoutSeconds, connectionName, caFile } = this.options;
    const client = await createRedisClient({ url, caFile }, {
      lazyConnect: true,
      enableOfflineQueue: false,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
      connectTimeout: timeoutSeconds * 1000,
      commandTimeout: timeoutSeconds * 1000,
      connectionName,
    });
    // Failures surface on the command or connect that needed the connection; this keeps the cause for it.
    client.on('error', (err: Error) => { this.lastError = err; });
    return client;
  }

}
