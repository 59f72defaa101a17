import { setTimeout as delay } from 'node:timers/promises';
import type pg from 'pg';
import { DistinctErrors, type Logger } from '../log.js';
import { createPool, databaseUrl } from '../systems/postgres/client.js';
import { CachedReading } from './framework/cache.js';
import { ReadAtMostEvery } from './framework/read-at-most-every.js';
import { readSizes, type DatabaseSizes } from './postgres-queries.js';
import type { TableColumns, TableName } from './postgres-table-columns.js';
import { TableRows } from './postgres-table-rows.js';
import { poolRows, type RowStream } from './postgres-top.js';

// Sizes take longer than a scrape on big catalogs; they run in the background, under this cap.
const SIZE_STATEMENT_TIMEOUT_SECONDS = 60;
// Longer than any sane scrape interval, so the scrape connection stays open between scrapes.
const IDLE_CLOSE_MS = 120_000;

/**
 * The connection to one database of a target: a pool of at most two clients (the scrape's and the
 * background size refresh's), kept open across scrapes. pg.Pool drops a client whose server went
 * away and connects a new one on the next query, so a restarted server needs nothing from us.
 */
export class DatabaseConnection {
  readonly pool: pg.Pool;
  /** The pool's rows as they arrive, for the per-table queries. */
  readonly stream: RowStream;
  readonly sizes: CachedReading<DatabaseSizes>;
  /** The label rows of this database's exported tables, kept across scrapes. */
  readonly rows: TableRows;
  /**
   * Its oldest tables by xid age, read again only every xidAgeRefreshSeconds: the query joins every
   * table to its TOAST table and was most of what a scrape cost PostgreSQL (two thirds of its CPU
   * at 3 x 3,400 tables, docs/performance.md, "Table xid ages read once a minute"), for ages that
   * move by the transactions of those seconds against limits in the hundreds of millions.
   */
  readonly xidAges: ReadAtMostEvery<TableColumns>;
  private readonly errors = new DistinctErrors();
  private readonly sizeErrors = new DistinctErrors();
  private readonly firstSizeWaitMs: number;
  private sizesRead = false;
  /**
   * The tables whose sizes the next refresh measures: this database's selected tables at the last
   * scrape (at most tables.limit), so the cache does not grow with the catalog. A table that enters
   * the selection gets its size at the next refresh.
   */
  measure: readonly TableName[] = [];

  constructor(
    readonly target: string,
    readonly database: string,
    url: string,
    timeoutSeconds: number,
    sizeRefreshSeconds: number,
    xidAgeRefreshSeconds: number,
    private readonly log: Logger,
  ) {
    this.pool = createPool({ url: databaseUrl(url, database), max: 2, idleCloseMs: IDLE_CLOSE_MS, timeoutSeconds, applicationName: 'upkeep' });
    this.stream = poolRows(this.pool);
    this.firstSizeWaitMs = (timeoutSeconds * 1000) / 2;
    this.rows = new TableRows(target, database);
    this.sizes = new CachedReading(sizeRefreshSeconds, () => readSizes(this.pool, SIZE_STATEMENT_TIMEOUT_SECONDS, this.measure));
    this.xidAges = new ReadAtMostEvery(xidAgeRefreshSeconds);
  }

  /**
   * Sizes from cache, or null when none has been read yet: the first read is waited for only up to
   * half the scrape's timeout (it keeps going in the background), so a big catalog cannot fail the
   * first scrapes. Failures are logged once per distinct error.
   */
  async cachedSizes(): Promise<{ value: DatabaseSizes; ageSeconds: number } | null> {
    try {
      const sizes = this.sizesRead ? await this.sizes.get() : await Promise.race([this.sizes.get(), delay(this.firstSizeWaitMs, null, { ref: false })]);
      if (!sizes) return null;
      this.sizesRead = true;
      this.noteSizeError(this.sizes.error);
      return sizes;
    } catch (err) {
      this.noteSizeError(err instanceof Error ? err : new Error(String(err)));
      return null;
    }
  }

  /** Logs a database's failure when it starts or changes, and its recovery, not every scrape. */
  noteResult(err: Error | null): void {
    const message = err ? err.message : null;
    if (!this.errors.changed(message)) return;
    // The message, not the Error: it is what names the cause (connection refused, no such database).
    if (err) this.log.warn({ target: this.target, database: this.database, err: message }, 'postgres database collection failed');
    else this.log.info({ target: this.target, database: this.database }, 'postgres database collection recovered');
  }

  private noteSizeError(err: Error | null): void {
    if (this.sizeErrors.changed(err ? err.message : null) && err) this.log.warn({ target: this.target, database: this.database, err: err.message }, 'postgres size refresh failed; serving the last sizes read');
  }

  async close(): Promise<void> {
    this.sizes.stop();
    await this.pool.end();
  }
}
