import { Socket } from 'node:net';
import type pg from 'pg';
import { postgresDriver } from '../../lazy.js';
import { MessageSocket } from './message-socket.js';

/**
 * pg's `stream` option: called with the connection's settings for each new connection. Plain
 * connections read whole messages (MessageSocket); TLS ones get the socket pg would make.
 */
export function socketFor(settings?: { readonly ssl?: unknown }): Socket {
  return settings?.ssl ? new Socket() : new MessageSocket();
}

/** The target's URL pointed at another database of the same server. */
export function databaseUrl(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${encodeURIComponent(database)}`;
  return parsed.toString();
}

/** A new, connected client; the caller must end() it. */
export async function connectClient(url: string, applicationName: string): Promise<pg.Client> {
  const client = new (postgresDriver().Client)({ connectionString: url, application_name: applicationName, stream: socketFor });
  client.on('error', () => undefined); // a dropped connection surfaces on the next query instead
  await client.connect();
  return client;
}

export interface PoolOptions {
  readonly url: string;
  readonly max: number;
  readonly idleCloseMs: number;
  readonly timeoutSeconds: number;
  readonly applicationName: string;
}

/**
 * A pool whose clients time out connecting and per statement. pg.Pool drops a client whose server
 * went away and connects a new one on the next query, so a restarted server needs nothing from us.
 */
export function createPool(options: PoolOptions): pg.Pool {
  const pool = new (postgresDriver().Pool)({
    connectionString: options.url,
    max: options.max,
    idleTimeoutMillis: options.idleCloseMs,
    connectionTimeoutMillis: options.timeoutSeconds * 1000,
    statement_timeout: options.timeoutSeconds * 1000,
    application_name: options.applicationName,
    allowExitOnIdle: true,
    stream: socketFor,
  });
  // An idle client whose server restarted errors here; the pool discards it and the next query
  // reports whether the server is back.
  pool.on('error', () => undefined);
  return pool;
}

/**
 * Runs `work` on a session of `pool`. A session whose work failed is closed rather than lent
 * again: it may be mid-transaction, or broken.
 */
export async function onPooledSession<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let failed = true;
  try {
    const result = await work(client);
    failed = false;
    return result;
  } finally {
    client.release(failed);
  }
}
