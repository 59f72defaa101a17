import type pg from 'pg';
import { postgresDriver } from '../../lazy.js';
import { StateStoreError } from './store-error.js';
import { quietClients, socketFor } from '../../systems/postgres/client.js';
import { pgConnection } from '../../systems/postgres/tls.js';

export interface StateDbOptions {
  /** `state.postgres.url`; it never appears in an error. */
  readonly url: string;
  /** `state.postgres.schema`: an identifier the config schema checked. */
  readonly schema: string;
  /** The statement timeout, the connect timeout and the client's wait for a reply. */
  readonly timeoutMs: number;
}

// Claims, appends and pages of GET /runs at once: a handful of connections per replica is plenty,
// and three replicas must not eat a database's max_connections.
const POOL_SIZE = 5;
const IDLE_CLOSE_MS = 60_000;

/**
 * The state store's connection pool: every statement has the statement timeout, tables are named
 * through `table()` (schema-qualified, quoted), and every error is a StateStoreError.
 */
export class StateDb {
  readonly pool: pg.Pool;

  constructor(private readonly options: StateDbOptions) {
    this.pool = new (postgresDriver().Pool)({
      ...pgConnection(options.url),
      max: POOL_SIZE,
      idleTimeoutMillis: IDLE_CLOSE_MS,
      connectionTimeoutMillis: options.timeoutMs,
      statement_timeout: options.timeoutMs,
      // The server's timeout ends the statement; this one ends the wait when the server is gone.
      query_timeout: options.timeoutMs + 1000,
      application_name: 'upkeep-state',
      allowExitOnIdle: true,
      stream: socketFor,
    });
    quietClients(this.pool);
  }

  /** `"schema".name`. */
  table(name: string): string {
    return `"${this.options.schema}".${name}`;
  }

  get schema(): string {
    return this.options.schema;
  }

  async query<R extends pg.QueryResultRow>(operation: string, sql: string, params: readonly unknown[] = []): Promise<R[]> {
    try {
      return (await this.pool.query<R>(sql, [...params])).rows;
    } catch (err) {
      throw new StateStoreError(operation, err);
    }
  }

  /** Runs `work` in one transaction on one connection. */
  async transaction<T>(operation: string, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw new StateStoreError(operation, err);
    }
    let broken = false;
    try {
      await client.query('begin');
      const result = await work(client);
      await client.query('commit');
      return result;
    } catch (err) {
      // A connection that cannot even roll back is dropped, not handed to the next caller.
      await client.query('rollback').catch(() => { broken = true; });
      throw err instanceof StateStoreError ? err : new StateStoreError(operation, err);
    } finally {
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/**
 * Text as PostgreSQL stores it: it holds no NUL character and no lone surrogate (a label or a
 * param from a request may carry either), so each becomes U+FFFD instead of failing the write.
 */
export function storableText(text: string): string {
  return text.replace(UNSTORABLE, '\uFFFD');
}

// NUL, a high surrogate not followed by a low one, a low one not preceded by a high one (code units: no "u" flag).
const UNSTORABLE = /\0|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** JSON for a jsonb column: the escapes jsonb refuses (\u0000, a lone \udXXX) become U+FFFD, in keys and values alike. */
export function storableJson(value: unknown): string {
  // Escape sequences are matched left to right, so an escaped backslash before "u0000" is left alone.
  return JSON.stringify(value).replace(/\\(\\|u0000|ud[89a-f][0-9a-f]{2})/g, (whole, escaped: string) => (escaped === '\\' ? whole : '\\ufffd'));
}
