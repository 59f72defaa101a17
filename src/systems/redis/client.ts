import { readFile } from 'node:fs/promises';
import type { Redis } from 'ioredis';
import { ioredis } from '../../lazy.js';

export interface RedisConnectionOptions {
  readonly url: string;
  readonly timeoutSeconds: number;
  readonly connectionName: string;
  /** CA certificate (PEM) for rediss:// servers signed by a private CA. */
  readonly caFile?: string | undefined;
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
    const tls = caFile && url.startsWith('rediss:') ? { tls: { ca: await readFile(caFile) } } : {};
    const client = new (ioredis().Redis)(url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
      connectTimeout: timeoutSeconds * 1000,
      commandTimeout: timeoutSeconds * 1000,
      connectionName,
      ...tls,
    });
    // Failures surface on the command or connect that needed the connection; this keeps the cause for it.
    client.on('error', (err: Error) => { this.lastError = err; });
    return client;
  }
}
