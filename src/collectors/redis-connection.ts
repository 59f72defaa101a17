import { Redis } from 'ioredis';

/**
 * One ioredis client that reconnects when it is next used rather than on a timer: with no retry
 * strategy a lost connection ends, commands fail at once (no offline queue), and the next scrape
 * connects again. A target that comes back is therefore up on the very next scrape, and a dead
 * one costs no background reconnect loop. The URL carries the password, ACL user, TLS (rediss://)
 * and database number; ioredis reads them all from it.
 */
export class RedisConnection {
  readonly client: Redis;
  private connecting: Promise<void> | null = null;

  constructor(url: string, timeoutSeconds: number, connectionName: string) {
    this.client = new Redis(url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
      connectTimeout: timeoutSeconds * 1000,
      commandTimeout: timeoutSeconds * 1000,
      connectionName,
    });
    // Failures surface on the command that needed the connection; this only keeps the event handled.
    this.client.on('error', () => undefined);
  }

  /** The client, connected. */
  async ready(): Promise<Redis> {
    if (this.client.status !== 'ready') {
      this.connecting ??= this.client.connect().finally(() => { this.connecting = null; });
      await this.connecting;
    }
    return this.client;
  }

  close(): void {
    this.client.disconnect();
  }
}
