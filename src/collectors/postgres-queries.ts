import type pg from 'pg';
import { z } from 'zod';
import { onPooledSession } from '../systems/postgres/client.js';
import { named } from '../systems/postgres/prepared.js';
import type { TableFilter } from './postgres-tables.js';
import { TableColumns, type ReadingOptions, type StatColumn, type TableName } from './postgres-table-columns.js';
import { afterCursor, readTop, type RowStream } from './postgres-top.js';
import { READ_ALL_STATS } from '../systems/postgres/horizon.js';
import { onFirstUse } from '../lazy-schema.js';

// Counters are cast to float8 so pg hands back numbers, not the strings it uses for int8/numeric.
// Only the database's top tables by dead tuples come back (tables.limit, see readTop): past the
// limit, a bigger catalog costs the server a sort, not us more rows. The rows are
// pg_stat_user_tables' (same relkinds, same schemas left out, same pg_stat_get_* functions), read
// from pg_class directly: the view also sums every table's index scans (a GROUP BY over all of
// them), and only the top tables need more than their dead tuples. The view's relkind 't' is left
// out: TOAST tables live only in the pg_toast schemas it excludes, and skipping them before the
// schema join halves the rows whose dead tuples are looked up.
const TABLE_STATS = named('table_stats', `
SELECT schema, "table", dead_tuples,
       pg_stat_get_live_tuples(oid)::float8 AS live_tuples,
       extract(epoch FROM greatest(pg_stat_get_last_vacuum_time(oid), pg_stat_get_last_autovacuum_time(oid)))::float8 AS last_vacuum,
       extract(epoch FROM greatest(pg_stat_get_last_analyze_time(oid), pg_stat_get_last_autoanalyze_time(oid)))::float8 AS last_analyze,
       extract(epoch FROM pg_stat_get_last_autovacuum_time(oid))::float8 AS last_autovacuum,
       extract(epoch FROM pg_stat_get_last_autoanalyze_time(oid))::float8 AS last_autoanalyze,
       pg_stat_get_vacuum_count(oid)::float8 AS vacuum_count, pg_stat_get_autovacuum_count(oid)::float8 AS autovacuum_count,
       pg_stat_get_analyze_count(oid)::float8 AS analyze_count, pg_stat_get_autoanalyze_count(oid)::float8 AS autoanalyze_count,
       pg_stat_get_mod_since_analyze(oid)::float8 AS mods_since_analyze
FROM (
  SELECT * FROM (
    SELECT c.oid, n.nspname::text COLLATE "C" AS schema, c.relname::text COLLATE "C" AS "table",
           pg_stat_get_dead_tuples(c.oid)::float8 AS dead_tuples
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'm', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
  ) s
  WHERE dead_tuples >= $5::float8 AND ${afterCursor('dead_tuples')}
  ORDER BY dead_tuples DESC, schema, "table" LIMIT $1
) top
ORDER BY dead_tuples DESC, schema, "table"`);

// Our own backend is excluded: its transaction is the scrape itself. A role without
// pg_read_all_stats sees other roles' xact_start as NULL, and read 0 while one had been open for
// minutes: for such a role the age is NULL, and not exported.
const OLDEST_TRANSACTION_SQL = `
SELECT CASE WHEN ${READ_ALL_STATS} THEN coalesce(extract(epoch FROM now() - min(xact_start)), 0) END::float8 AS age
FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`;

// Only the tables the scrapes select are measured, so the cache stays as small as tables.limit.
const TABLE_SIZES_SQL = `
SELECT w.schema, w."table", pg_table_size(c.oid)::float8 AS bytes
FROM unnest($1::text[], $2::text[]) AS w(schema, "table")
JOIN pg_namespace n ON n.nspname = w.schema
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w."table"`;

const DATABASE_SIZE_SQL = 'SELECT pg_database_size(current_database())::float8 AS bytes';

// Unique, primary-key and exclusion indexes enforce constraints, so "never scanned" does not make them droppable.
const UNUSED_INDEXES_SQL = `
SELECT count(*)::float8 AS count, coalesce(sum(pg_relation_size(s.indexrelid)), 0)::float8 AS bytes
FROM pg_stat_user_indexes s JOIN pg_index i USING (indexrelid)
WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary AND NOT i.indisexclusion`;

// pg_stat_statements hides other roles' queryids from a role without pg_read_all_stats: its top
// statements would be its own, their times only its own part of each queryid's. It reads none.
const STATEMENTS_SCHEMA_SQL = `
SELECT n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_stat_statements' AND ${READ_ALL_STATS}`;

/** TABLE_STATS's number columns, after schema and table: the timestamps are NULL when never. */
export const TABLE_STAT_COLUMNS: readonly StatColumn[] = [
  { name: 'dead_tuples', nullable: false }, { name: 'live_tuples', nullable: false },
  { name: 'last_vacuum', nullable: true }, { name: 'last_analyze', nullable: true },
  { name: 'last_autovacuum', nullable: true }, { name: 'last_autoanalyze', nullable: true },
  { name: 'vacuum_count', nullable: false }, { name: 'autovacuum_count', nullable: false },
  { name: 'analyze_count', nullable: false }, { name: 'autoanalyze_count', nullable: false },
  { name: 'mods_since_analyze', nullable: false },
];
const sizeRow = onFirstUse(() => z.object({ schema: z.string(), table: z.string(), bytes: z.number().nullable() }));
const bytesRow = onFirstUse(() => z.object({ bytes: z.number() }));
const ageRow = onFirstUse(() => z.object({ age: z.number().nullable() }));
const unusedRow = onFirstUse(() => z.object({ count: z.number(), bytes: z.number() }));
const schemaRow = onFirstUse(() => z.object({ schema: z.string() }));
const statementRow = onFirstUse(() => z.object({ queryid: z.string(), seconds: z.number(), calls: z.number() }));

export interface DatabaseSizes {
  readonly databaseBytes: number;
  /** By schema, then table: looked up with the kept names' strings, no key string is made per table. */
  readonly tableBytes: ReadonlyMap<string, ReadonlyMap<string, number>>;
  readonly unusedIndexes: number;
  readonly unusedIndexBytes: number;
}

export interface StatementStats { readonly queryid: string; readonly seconds: number; readonly calls: number }

/**
 * The database's top `limit` tables by dead tuples that the filters admit, ties by schema and table
 * name: the rows the selection across databases would keep of this database, read without reading
 * the others, straight into columns, made as `options` says (ReadingOptions).
 */
export async function readTableStats(stream: RowStream, database: string, filter: TableFilter, options?: ReadingOptions): Promise<TableColumns> {
  const reading = new TableColumns(database, TABLE_STAT_COLUMNS, options);
  await readTop(stream, TABLE_STATS, reading, 'dead_tuples', filter, [filter.minDeadTuples]);
  return reading;
}

/** null: the role may not see other roles' transactions (no pg_read_all_stats). */
export async function readOldestTransactionAge(pool: pg.Pool): Promise<number | null> {
  const { rows } = await pool.query(OLDEST_TRANSACTION_SQL);
  return z.tuple([ageRow]).parse(rows)[0].age;
}

/**
 * The expensive readings (pg_table_size is a stat() per relation file, about 350 ms on 3,400
 * tables), of the given tables only. They take an AccessShareLock per relation, so a short
 * lock_timeout makes a table held by VACUUM FULL or ALTER fail this refresh (the cache keeps the
 * last sizes) instead of hanging it.
 */
export async function readSizes(pool: pg.Pool, statementTimeoutSeconds: number, tables: readonly TableName[]): Promise<DatabaseSizes> {
  // After a failure the connection may be mid-transaction or broken: it is discarded rather than reused.
  return onPooledSession(pool, async (client) => {
    await client.query('BEGIN READ ONLY');
    await client.query(`SET LOCAL statement_timeout = ${Math.round(statementTimeoutSeconds * 1000)}`);
    await client.query("SET LOCAL lock_timeout = '2s'");
    const measured = z.array(sizeRow).parse((await client.query(TABLE_SIZES_SQL, [tables.map((t) => t.schema), tables.map((t) => t.table)])).rows);
    const [database] = z.tuple([bytesRow]).parse((await client.query(DATABASE_SIZE_SQL)).rows);
    const [unused] = z.tuple([unusedRow]).parse((await client.query(UNUSED_INDEXES_SQL)).rows);
    await client.query('COMMIT');
    const tableBytes = new Map<string, Map<string, number>>();
    // A table dropped while we measured has a NULL size: it simply has no size series.
    for (const row of measured) {
      if (row.bytes === null) continue;
      const tables = tableBytes.get(row.schema) ?? new Map<string, number>();
      tableBytes.set(row.schema, tables.set(row.table, row.bytes));
    }
    return { databaseBytes: database.bytes, tableBytes, unusedIndexes: unused.count, unusedIndexBytes: unused.bytes };
  });
}

/**
 * Top statements by total execution time in this database; null when the extension is not
 * installed here, or the role may not see other roles' statements (no pg_read_all_stats).
 */
export async function readStatements(pool: pg.Pool, limit: number): Promise<StatementStats[] | null> {
  const found = z.array(schemaRow).parse((await pool.query(STATEMENTS_SCHEMA_SQL)).rows);
  const schema = found[0]?.schema;
  if (schema === undefined) return null;
  const view = `${quoteIdentifier(schema)}.pg_stat_statements`;
  // One queryid can have several rows (per user, top-level or nested): sum them into one series.
  const { rows } = await pool.query(
    `SELECT queryid::text AS queryid, sum(total_exec_time)::float8 / 1000 AS seconds, sum(calls)::float8 AS calls
     FROM ${view}
     WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND queryid IS NOT NULL
     GROUP BY queryid ORDER BY sum(total_exec_time) DESC LIMIT $1`,
    [limit],
  );
  return z.array(statementRow).parse(rows);
}

function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
