import { Socket } from 'node:net';
import type pg from 'pg';
import { postgresDriver } from '../../lazy.js';
import { MessageSocket } from './message-socket.js';
import { pgConnection } from './tls.js';

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

/** What cuts a connection attempt short: a run's abort (its deadline, a shutdown); the engine's RunAbort is one. */
export interface ConnectCancel {
  readonly aborted: boolean;
  readonly reason: unknown;
  onAbort(listener: () => void): () => void;
}

// As long as the children (pg_dump, psql) get to connect (PGCONNECT_TIMEOUT in
// src/systems/process/child.ts): a server that accepts and never answers fails a connect in
// 30 s rather than holding it, and the run's slot, until the run's deadline or forever.
export const CONNECT_TIMEOUT_MS = 30_000;

export interface ConnectOptions {
  readonly timeoutMs?: number;
  readonly cancel?: ConnectCancel;
}

/** A new, connected client; the caller must end() it. An abort ends the attempt at once, rejecting with its reason. */
export async function connectClient(url: string, applicationName: string, options: ConnectOptions = {}): Promise<pg.Client> {
  const { timeoutMs = CONNECT_TIMEOUT_MS, cancel } = options;
  if (cancel?.aborted) throw cancel.reason;
  const client = new (postgresDriver().Client)({
    ...pgConnection(url), application_name: applicationName, stream: socketFor, connectionTimeoutMillis: Math.max(1, Math.round(timeoutMs)),
  });
  client.on('error', () => undefined); // a dropped connection surfaces on the next query instead
  // The socket destroyed with an error, as pg's own connect timeout does: connect() then rejects.
  // (end() while connecting closes the socket, but connect() never settles.)
  const stopListening = cancel?.onAbort(() => { client.connection.stream.destroy(new Error('stopped while connecting')); });
  try {
    await client.connect();
  } catch (err) {
    if (cancel?.aborted) throw cancel.reason;
    throw timedOut(err) ? new Error(`the server did not answer within ${Math.round(timeoutMs / 100) / 10}s of connecting`) : err;
  } finally {
    stopListening?.();
  }
  return client;
}

/** pg's words for its own connect timeout, which say neither which timeout nor how long. */
function timedOut(err: unknown): boolean {
  return err instanceof Error && /timeout expired|connection timeout/.test(err.message);
}

/** A session of `pool`, given up on when `cancel` aborts: one that still comes is closed, not kept. */
export function connectPooled(pool: pg.Pool, cancel?: ConnectCancel): Promise<pg.PoolClient> {
  if (!cancel) return pool.connect();
  if (cancel.aborted) return Promise.reject(cancel.reason);
  const pending = pool.connect();
  return new Promise((resolve, reject) => {
    const stopListening = cancel.onAbort(() => {
      void pending.then((late) => late.release(true), () => undefined);
      reject(cancel.reason);
    });
    pending.then((client) => {
      stopListening();
      resolve(client);
    }, (err: unknown) => {
      stopListening();
      reject(err);
    });
  });
}

export interface PoolOptions {
  readonly url: string;
  readonly max: number;
  readonly idleCloseMs: number;
  readonly timeoutSeconds: number;
  readonly applicationName: string;
}

// The clients each pool is still connecting (see endPool).
const CONNECTING = new WeakMap<pg.Pool, Set<pg.Client>>();

/**
 * A pool whose clients time out connecting and per statement. pg.Pool drops a client whose server
 * went away and connects a new one on the next query, so a restarted server needs nothing from us.
 */
export function createPool(options: PoolOptions): pg.Pool {
  const Driver = postgresDriver();
  const connecting = new Set<pg.Client>();
  // Each client the pool makes is known until it has connected, so endPool can cut the attempts
  // that would otherwise hold pool.end() (and the process) until their connect timeout.
  class TrackedClient extends Driver.Client {
    constructor(config?: string | pg.ClientConfig) {
      super(config);
      connecting.add(this);
      const settled = () => connecting.delete(this);
      this.once('connect', settled);
      this.once('end', settled);
    }
  }
  const pool = new Driver.Pool({
    ...pgConnection(options.url),
    max: options.max,
    idleTimeoutMillis: options.idleCloseMs,
    connectionTimeoutMillis: Math.min(options.timeoutSeconds * 1000, CONNECT_TIMEOUT_MS),
    statement_timeout: options.timeoutSeconds * 1000,
    application_name: options.applicationName,
    allowExitOnIdle: true,
    stream: socketFor,
    Client: TrackedClient,
  });
  CONNECTING.set(pool, connecting);
  quietClients(pool);
  return pool;
}

/**
 * An idle client whose server restarted errors on the pool, which discards it; the next query
 * reports whether the server is back. pg-pool listens only to idle clients: a FATAL (a restart's
 * "terminating connection due to administrator command") reaching a client lent out between two
 * of its queries, as a collector's BEGIN … COMMIT is, was an 'error' event nobody listened to, and
 * it ended the process. Every client gets a listener; its next query fails instead.
 */
export function quietClients(pool: pg.Pool): void {
  pool.on('error', () => undefined);
  pool.on('connect', (client) => { client.on('error', () => undefined); });
}

/**
 * Ends a pool made by createPool. A connection it is still making (to a server that takes
 * connections and never answers; a run that gave up on it, connectPooled) is cut at once, rather
 * than waited for until its connect timeout.
 */
export async function endPool(pool: pg.Pool): Promise<void> {
  const ending = pool.end();
  for (const client of CONNECTING.get(pool) ?? []) client.connection.stream.destroy(new Error('the pool is closing'));
  await ending;
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
