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
  const client = new (ioredis().Redis)(endpoint.url, { ...options, ...tls });
  // ioredis parses the URL's path with parseInt: a path that is no number would be database 0.
  const db = client.options.db ?? 0;
  if (!Number.isSafeInteger(db) || db < 0) {
    client.disconnect();
    throw new Error(`the URL's path must be a database number (redis://HOST:PORT/1), not "${new URL(endpoint.url).pathname}"`);
  }
  refuseUnselectedDatabase(client, db);
  return client;
}

/**
 * A connection refused SELECT for the database its URL names; it is never used on another. Any
 * error reply counts, a passing one too (LOADING while Redis reads its dump): that connection is
 * dropped, and the next scrape or run connects again.
 */
export class SelectRefused extends Error {
  constructor(readonly db: number, reply: Error) {
    const fix = reply.message.startsWith('NOPERM') ? ': give the ACL user +select'
      : /DB index is out of range/.test(reply.message) ? ': use a database number the server has (its "databases" setting)'
        : '';
    super(`the URL names database ${db}, but SELECT ${db} was refused (${reply.message})${fix}`, { cause: reply });
  }
}

/**
 * Makes a refused SELECT fail the connection, on the first connect and on every reconnect.
 *
 * ioredis keeps the URL's database as the connection's (options.db, copied into `condition.select`
 * on each connect) and sends SELECT in its connect handshake, but a refused SELECT (NOPERM for an
 * ACL user without +select) only goes to the 'error' event: the handshake goes on, the client
 * becomes ready and every command runs on database 0. A refused AUTH, by contrast, fails the
 * handshake: the commands waiting are rejected with its error and the connection is dropped
 * (`recoverFromFatalError`), so the client never becomes ready. The listener below makes SELECT's
 * refusal that same failure: it throws from inside the handshake's error handler, which rejects
 * the handshake, before the ready check is sent, so no command that depends on the database
 * runs on that connection (ioredis writes its handshake's own commands, INFO and CLIENT among
 * them, straight to the socket: neither depends on it); the commands queued for it are rejected
 * with this error, which the 'error' event then reports (to RedisConnection, firstConnection and
 * the log).
 *
 * The database is left to ioredis rather than selected by a hook of ours: ioredis tags each
 * queued command with the database it was queued for and, when the connection becomes ready,
 * sends SELECT for any tag that differs from the connection's; with ioredis told database 0 and
 * our own SELECT after, commands queued before the first ready would be sent after a SELECT 0.
 */
function refuseUnselectedDatabase(client: Redis, db: number): void {
  if (db === 0) return; // ioredis sends no SELECT for database 0, where every connection starts
  client.on('error', (err: Error) => {
    if (!isSelectReply(err)) return;
    const refused = new SelectRefused(db, err);
    // In the handshake (the only place ioredis reports a SELECT reply as an event): fail it, as a refused AUTH does.
    if (client.status === 'connect' && client.condition?.handshake === true) throw refused;
    // Anywhere else: reject what waits and drop the connection, which is what the handshake's failure does.
    client.recoverFromFatalError(refused, refused, {});
  });
}

/** An error reply to a SELECT (ioredis names the command a reply error answered). */
function isSelectReply(err: Error): boolean {
  return 'command' in err && typeof err.command === 'object' && err.command !== null
    && 'name' in err.command && typeof err.command.name === 'string' && err.command.name.toLowerCase() === 'select';
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
 * and commands will report (a server not up yet). A TLS failure or a refused SELECT, which
 * retrying cannot fix, rejects with a message that names it, and the client is disconnected.
 */
export function firstConnection(client: Redis): Promise<Redis> {
  if (client.status === 'ready') return Promise.resolve(client);
  return new Promise((resolve, reject) => {
    const settle = (err: Error | null) => {
      client.off('ready', onReady);
      client.off('error', onError);
      const tls = err === null ? null : tlsProblem(err);
      if (err === null || (tls === null && !(err instanceof SelectRefused))) {
        resolve(client);
        return;
      }
      client.disconnect();
      reject(tls === null ? err : new Error(tls, { cause: err }));
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
 * and database number; ioredis reads them all from it (a refused SELECT fails the connection:
 * see refuseUnselectedDatabase).
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
