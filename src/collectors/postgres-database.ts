import { setTimeout as delay } from 'node:timers/promises';
import type pg from 'pg';
import { DistinctErrors, type Logger } from '../log.js';
import { createPool, databaseUrl, endPool } from '../systems/postgres/client.js';
import { CachedReading } from './framework/cache.js';
import { readSizes, type DatabaseSizes } from './postgres-queries.js';
import type { ReadingOptions, TableColumns, TableName } from './postgres-table-columns.js';
import { TableRows } from './postgres-table-rows.js';
import { readTableXidAges } from './postgres-wraparound.js';
import type { TableFilter } from './postgres-tables.js';
import { poolRows, type RowStream } from './postgres-top.js';

// Sizes take longer than a scrape on big catalogs; they run in the background, under this cap.
const SIZE_STATEMENT_TIMEOUT_SECONDS = 60;
// The tables' xid ages are read this long after the scrape that found them old: scrapes come
// seconds apart, so the read runs between two of them. Started by that scrape, it competed with its
// queries and rows, and a scrape a second with the ages always old was as slow as reading them
// itself (docs/performance.md, "Table xid ages read once a minute").
const XID_AGE_DEFER_MS = 1000;
const SIZE_REFRESH_FAILED = 'postgres size refresh failed; serving the last sizes read';
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
   * Its oldest tables by xid age, read in the background every xidAgeRefreshSeconds (null: 0, read
   * by every scrape): the query joins every table to its TOAST table and was most of what a scrape
   * cost PostgreSQL (two thirds of its CPU at 3 x 3,400 tables, docs/performance.md, "Table xid
   * ages read once a minute"), for ages that move by the transactions of those seconds against
   * limits in the hundreds of millions. Kept between reads, so its columns are its own, not the
   * collections' pool's.
   */
  private readonly xidAges: CachedReading<TableColumns> | null;
  private readonly xidAgeErrors = new DistinctErrors();
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
    private readonly tables: TableFilter,
    private readonly log: Logger,
  ) {
    this.pool = createPool({ url: databaseUrl(url, database), max: 2, idleCloseMs: IDLE_CLOSE_MS, timeoutSeconds, applicationName: 'upkeep' });
    this.stream = poolRows(this.pool);
    this.firstSizeWaitMs = (timeoutSeconds * 1000) / 2;
    this.rows = new TableRows(target, database);
    this.sizes = new CachedReading(sizeRefreshSeconds, () => readSizes(this.pool, SIZE_STATEMENT_TIMEOUT_SECONDS, this.measure));
    let last: TableColumns | undefined;
    this.xidAges = xidAgeRefreshSeconds === 0 ? null : new CachedReading(xidAgeRefreshSeconds, async () => {
      // Columns of its own, sized for the last reading: they are kept between reads.
      last = await readTableXidAges(this.stream, database, tables, { known: this.rows, expectedRows: last?.length ?? this.measure.length });
      return last;
    }, Date.now, XID_AGE_DEFER_MS);
  }

  /**
   * Its oldest tables by xid age, with the reading's age (null: read now, for this caller, made
   * as `now` says, like the collection's other readings). Only the first read is waited for, and
   * its failure fails the caller; a later background read that fails is logged once and the last
   * reading is served, its age growing (upkeep_collector_cache_age_seconds, alert
   * UpkeepCacheStale), as sizes are.
   */
  async oldestTables(now: ReadingOptions): Promise<{ value: TableColumns; ageSeconds: number | null }> {
    if (!this.xidAges) return { value: await readTableXidAges(this.stream, this.database, this.tables, now), ageSeconds: null };
    const reading = await this.xidAges.get();
    this.noteRefreshError(this.xidAgeErrors, this.xidAges.error, 'postgres table xid age refresh failed; serving the last ages read');
    return reading;
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
      this.noteRefreshError(this.sizeErrors, this.sizes.error, SIZE_REFRESH_FAILED);
      return sizes;
    } catch (err) {
      this.noteRefreshError(this.sizeErrors, err instanceof Error ? err : new Error(String(err)), SIZE_REFRESH_FAILED);
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

  /** Logs a background refresh's failure when it starts or changes (a reading's DistinctErrors); the last value is served meanwhile. */
  private noteRefreshError(errors: DistinctErrors, err: Error | null, message: string): void {
    if (errors.changed(err ? err.message : null) && err) this.log.warn({ target: this.target, database: this.database, err: err.message }, message);
  }


  async close(): Promise<void> {
    this.sizes.stop();
    this.xidAges?.stop();
    await endPool(this.pool);
  }
}
