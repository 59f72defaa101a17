import type { PostgresTarget } from '../config/schema.js';
import { DistinctErrors, errorMessage, type Logger } from '../log.js';
import { ArrayPool, type Borrowed } from './framework/array-pool.js';
import { CachedReading } from './framework/cache.js';
import { discoverDatabases, urlDatabase } from '../systems/postgres/watched.js';
import { DatabaseConnection } from './postgres-database.js';
import { readOldestTransactionAge, readStatements, readTableStats, type DatabaseSizes, type StatementStats } from './postgres-queries.js';
import { selectTables, type TableFilter } from './postgres-tables.js';
import { AUTOVACUUM_COLUMNS, AUTOVACUUM_FAMILIES } from './postgres-autovacuum.js';
import { SERVER_FAMILIES, ServerReadings } from './postgres-server.js';
import { selectTop, type Selection, type SelectionArrays, type TableColumns, type TableName } from './postgres-table-columns.js';
import type { BlockRow, CacheAge, CollectResult, CollectorInstance, CollectorModule, FamilySpec, Reading, SeriesBlock } from './framework/types.js';

const TABLE = ['target', 'database', 'schema', 'table'];
const DATABASE = ['target', 'database'];
const STATEMENT = ['target', 'database', 'queryid'];

const FAMILIES: readonly FamilySpec[] = [
  { name: 'upkeep_postgres_database_up', help: 'Whether the last collection from this database succeeded (1) or failed (0); the target stays up while any of its databases answers.', type: 'gauge', labelNames: DATABASE },
  { name: 'upkeep_postgres_dead_tuples', help: 'Estimated dead tuples (pg_stat_user_tables.n_dead_tup).', type: 'gauge', labelNames: TABLE },
  { name: 'upkeep_postgres_live_tuples', help: 'Estimated live tuples (pg_stat_user_tables.n_live_tup).', type: 'gauge', labelNames: TABLE },
  { name: 'upkeep_postgres_last_vacuum_timestamp_seconds', help: 'Unix time of the last manual or auto vacuum, whichever is later; absent when never vacuumed.', type: 'gauge', labelNames: TABLE },
  { name: 'upkeep_postgres_last_analyze_timestamp_seconds', help: 'Unix time of the last manual or auto analyze, whichever is later; absent when never analyzed.', type: 'gauge', labelNames: TABLE },
  { name: 'upkeep_postgres_table_size_bytes', help: 'pg_table_size of the table (heap, TOAST, free space and visibility maps; no indexes), refreshed every sizeRefreshSeconds.', type: 'gauge', labelNames: TABLE },
  { name: 'upkeep_postgres_database_size_bytes', help: 'pg_database_size of the database, refreshed every sizeRefreshSeconds.', type: 'gauge', labelNames: DATABASE },
  { name: 'upkeep_postgres_unused_indexes', help: 'Indexes never scanned since the statistics were reset, not counting unique, primary-key and exclusion indexes; refreshed every sizeRefreshSeconds.', type: 'gauge', labelNames: DATABASE },
  { name: 'upkeep_postgres_unused_index_bytes', help: 'Total size of the indexes counted by upkeep_postgres_unused_indexes.', type: 'gauge', labelNames: DATABASE },
  { name: 'upkeep_postgres_oldest_transaction_age_seconds', help: 'Age of the oldest open transaction in the database (pg_stat_activity.xact_start), 0 when none; absent without pg_read_all_stats (in pg_monitor).', type: 'gauge', labelNames: DATABASE },
  { name: 'upkeep_postgres_statement_seconds_total', help: 'Total execution time of one of the top statements by total time (pg_stat_statements), by queryid; none without pg_read_all_stats (in pg_monitor).', type: 'counter', labelNames: STATEMENT },
  { name: 'upkeep_postgres_statement_calls_total', help: 'Calls of one of the top statements by total time (pg_stat_statements), by queryid; none without pg_read_all_stats (in pg_monitor).', type: 'counter', labelNames: STATEMENT },
];

export interface DatabaseResult {
  database: string;
  /** Its top tables by dead tuples, every column of TABLE_STATS (readTableStats). */
  tables: TableColumns;
  /** null: not known, the role may not see other roles' sessions. */
  oldestTransactionSeconds: number | null;
  sizes: { value: DatabaseSizes; ageSeconds: number } | null;
  statements: StatementStats[] | null;
  /** Its oldest tables, column xid_age (readTableXidAges). */
  xidAges: TableColumns;
  /** How old that reading is, when it was read before this collection (xidAgeRefreshSeconds). */
  xidAgeSeconds?: number;
}

/** One postgres target: a connection per database, discovered when `databases: auto`. */
class PostgresCollector implements CollectorInstance {
  readonly collector = 'postgres';
  readonly target: string;
  private readonly connections = new Map<string, DatabaseConnection>();
  private readonly discovery: CachedReading<string[]> | null;
  private readonly server: ServerReadings;
  private readonly adminDatabase: string;
  private readonly statementsErrors = new DistinctErrors();
  private readonly arrays = new ArrayPool();

  constructor(private readonly config: PostgresTarget, private readonly timeoutSeconds: number, private readonly log: Logger) {
    this.target = config.name;
    this.server = new ServerReadings(config.name, config.statements.enabled, log);
    this.adminDatabase = urlDatabase(config.url);
    this.discovery = config.databases === 'auto'
      ? new CachedReading(config.discoverRefreshSeconds, () => discoverDatabases(this.connection(this.adminDatabase).pool))
      : null;
  }

  async collect(): Promise<CollectResult> {
    const databases = this.discovery ? (await this.discovery.get()).value : [...this.config.databases];
    await this.closeGone(databases);
    this.arrays.sweep();
    // The readings' columns are read until postgresResult has copied out what it publishes; the
    // published columns until the scraper releases this result (no exposition reads it any more).
    const readings = this.arrays.borrow();
    try {
      const [outcomes, serverReadings] = await Promise.all([
        Promise.all(databases.map((database) => this.collectDatabase(database, readings))),
        this.server.read(this.connection(this.adminDatabase).pool),
      ]);
      const failures = outcomes.filter((outcome): outcome is Error => outcome instanceof Error);
      // Every database failing means the server (or our access to it) is down: the target is down.
      if (failures.length === outcomes.length && failures[0]) throw failures[0];
      const results = outcomes.filter((outcome): outcome is DatabaseResult => !(outcome instanceof Error));
      const row = (database: string, table: TableName) => this.connection(database).rows.rowOf(table);
      const published = this.arrays.borrow();
      const result = postgresResult({ target: this.target, tables: this.config.tables, row, arrays: { scratch: readings, published } }, databases, results, serverReadings);
      for (const database of databases) this.connection(database).rows.endCollection();
      return { ...result, release: () => published.giveBack() };
    } finally {
      readings.giveBack();
    }
  }

  async close(): Promise<void> {
    this.discovery?.stop();
    await Promise.allSettled([...this.connections.values()].map((connection) => connection.close()));
    this.connections.clear();
  }

  private connection(database: string): DatabaseConnection {
    let connection = this.connections.get(database);
    if (!connection) {
      connection = new DatabaseConnection(this.target, database, this.config.url, this.timeoutSeconds, this.config.sizeRefreshSeconds, this.config.xidAgeRefreshSeconds, this.config.tables, this.log);
      this.connections.set(database, connection);
    }
    return connection;
  }

  /** Closes the pools of databases that were dropped (or lost CONNECT) since the last discovery. */
  private async closeGone(databases: readonly string[]): Promise<void> {
    const keep = new Set([...databases, this.adminDatabase]);
    const gone = [...this.connections.keys()].filter((database) => !keep.has(database));
    for (const database of gone) {
      const connection = this.connections.get(database);
      this.connections.delete(database);
      await connection?.close().catch(() => undefined);
    }
  }

  private async collectDatabase(database: string, arrays: Borrowed): Promise<DatabaseResult | Error> {
    const connection = this.connection(database);
    try {
      // The tables of the last reading: how many rows this one will most likely have.
      const reading = { known: connection.rows, expectedRows: connection.measure.length, arrays };
      // The two per-table queries side by side, on the pool's two sessions, when the xid ages are
      // read now: while node reads one's rows, PostgreSQL works on the other's. Both are settled
      // before anything fails, since the columns read now go back to the pool when the collection
      // ends.
      const [stats, ages] = await Promise.allSettled([
        readTableStats(connection.stream, database, this.config.tables, reading),
        connection.oldestTables(reading),
      ]);
      if (stats.status === 'rejected') throw stats.reason;
      if (ages.status === 'rejected') throw ages.reason;
      const tables = stats.value;
      const { value: xidAges, ageSeconds: xidAgeSeconds } = ages.value;
      const oldestTransactionSeconds = await readOldestTransactionAge(connection.pool);
      connection.measure = tables.names;
      const sizes = await connection.cachedSizes();
      const statements = this.config.statements.enabled ? await this.statements(connection) : null;
      connection.noteResult(null);
      return { database, tables, oldestTransactionSeconds, sizes, statements, xidAges, ...(xidAgeSeconds === null ? {} : { xidAgeSeconds }) };
    } catch (err) {
      const error = new Error(`database "${database}": ${errorMessage(err)}`);
      connection.noteResult(error);
      return error;
    }
  }

  /** pg_stat_statements is optional: when it cannot be read, say so once and export the rest. */
  private async statements(connection: DatabaseConnection): Promise<StatementStats[] | null> {
    try {
      const statements = await readStatements(connection.pool, this.config.statements.limit);
      this.statementsErrors.changed(null);
      return statements;
    } catch (err) {
      const message = errorMessage(err);
      if (this.statementsErrors.changed(message)) this.log.warn({ target: this.target, database: connection.database, err: message }, 'cannot read pg_stat_statements; statement metrics skipped');
      return null;
    }
  }
}

/** How one target's readings are chosen: its name, its tables filters (tables.limit), its tables' label rows. */
export interface PostgresView {
  readonly target: string;
  readonly tables: TableFilter;
  readonly row: (database: string, table: TableName) => BlockRow;
  /** Where the selections keep their numbers (fresh arrays when not given). */
  readonly arrays?: SelectionArrays;
}

/**
 * What one collection exports, from what it read. Pure, so a fixed catalog reading always renders
 * the same exposition (test/collectors/exposition.test.ts holds one, byte for byte).
 */
export function postgresResult(view: PostgresView, databases: readonly string[], results: readonly DatabaseResult[], serverReadings: readonly Reading[]): CollectResult {
  const { target } = view;
  const readings: Reading[] = [];
  const cacheAges: CacheAge[] = [];
  for (const database of databases) {
    const up = results.some((result) => result.database === database) ? 1 : 0;
    readings.push({ family: 'upkeep_postgres_database_up', labels: { target, database }, value: up });
  }
  for (const result of results) {
    pushDatabase(readings, target, result);
    if (result.sizes) cacheAges.push({ reading: `sizes:${result.database}`, ageSeconds: result.sizes.ageSeconds });
    if (result.xidAgeSeconds !== undefined) cacheAges.push({ reading: `xid_ages:${result.database}`, ageSeconds: result.xidAgeSeconds });
  }
  readings.push(...serverReadings);
  const tables = tableBlock(view, selectTables(results.map((result) => result.tables), view.tables, view.arrays), results);
  const oldest = selectTop(results.map((result) => result.xidAges), 'xid_age', view.tables, view.arrays);
  const xidAges = { labelNames: TABLE, rows: blockRows(view, oldest), columns: [oldest.column('upkeep_postgres_table_xid_age', 'xid_age')] };
  return { readings, blocks: [tables, xidAges], cacheAges };
}

function pushDatabase(readings: Reading[], target: string, result: DatabaseResult): void {
  const labels = { target, database: result.database };
  if (result.oldestTransactionSeconds !== null) readings.push({ family: 'upkeep_postgres_oldest_transaction_age_seconds', labels, value: result.oldestTransactionSeconds });
  if (result.sizes) {
    const sizes = result.sizes.value;
    readings.push({ family: 'upkeep_postgres_database_size_bytes', labels, value: sizes.databaseBytes });
    readings.push({ family: 'upkeep_postgres_unused_indexes', labels, value: sizes.unusedIndexes });
    readings.push({ family: 'upkeep_postgres_unused_index_bytes', labels, value: sizes.unusedIndexBytes });
  }
  for (const statement of result.statements ?? []) {
    const statementLabels = { ...labels, queryid: statement.queryid };
    readings.push({ family: 'upkeep_postgres_statement_seconds_total', labels: statementLabels, value: statement.seconds });
    readings.push({ family: 'upkeep_postgres_statement_calls_total', labels: statementLabels, value: statement.calls });
  }
}

/** The per-table families, one row per selected table: the bulk of a big catalog's series. */
function tableBlock(view: PostgresView, tables: Selection, results: readonly DatabaseResult[]): SeriesBlock {
  const sizesByDatabase = new Map(results.map((result) => [result.database, result.sizes?.value]));
  const size = (i: number) => {
    const { schema, table } = tables.name(i);
    return sizesByDatabase.get(tables.database(i))?.tableBytes.get(schema)?.get(table);
  };
  return { labelNames: TABLE, rows: blockRows(view, tables), columns: [
    tables.column('upkeep_postgres_dead_tuples', 'dead_tuples'),
    tables.column('upkeep_postgres_live_tuples', 'live_tuples'),
    tables.column('upkeep_postgres_last_vacuum_timestamp_seconds', 'last_vacuum'),
    tables.column('upkeep_postgres_last_analyze_timestamp_seconds', 'last_analyze'),
    ...AUTOVACUUM_COLUMNS.map(({ family, column, labels }) => tables.column(family, column, labels)),
    tables.column('upkeep_postgres_table_size_bytes', size),
  ] };
}

/** The label rows of the selected tables. */
function blockRows(view: PostgresView, selection: Selection): BlockRow[] {
  const rows: BlockRow[] = [];
  for (let i = 0; i < selection.length; i += 1) rows.push(view.row(selection.database(i), selection.name(i)));
  return rows;
}

export const postgres: CollectorModule = {
  name: 'postgres',
  families: [...FAMILIES, ...AUTOVACUUM_FAMILIES, ...SERVER_FAMILIES],
  upFamily: { name: 'upkeep_postgres_up', help: 'Whether the last collection from this PostgreSQL target succeeded (1) or failed (0).', label: 'target' },
  build({ config, log }) {
    return config.targets.postgres.map((target) => new PostgresCollector(target, config.collectors.timeoutSeconds, log));
  },
};
