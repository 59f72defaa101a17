import type pg from 'pg';
import { z } from 'zod';
import { named } from '../systems/postgres/prepared.js';
import type { TablePatterns } from '../systems/postgres/watched.js';
import { TableColumns, type ReadingOptions, type StatColumn } from './postgres-table-columns.js';
import { afterCursor, readTop, type RowStream } from './postgres-top.js';
import type { FamilySpec, Reading } from './framework/types.js';
import { onFirstUse } from '../lazy-schema.js';

// Transaction ID wraparound: how far each database's and each table's oldest unfrozen ID lags
// behind the current one. Autovacuum forces a freezing vacuum at autovacuum_freeze_max_age, and at
// 2^31 PostgreSQL stops assigning IDs, so these ages are the only early warning.

export const WRAPAROUND_FAMILIES: readonly FamilySpec[] = [
  { name: 'upkeep_postgres_xid_age', help: 'age(datfrozenxid): transactions since the oldest unfrozen transaction ID in the database (every database of the server).', type: 'gauge', labelNames: ['target', 'database'] },
  { name: 'upkeep_postgres_mxid_age', help: 'mxid_age(datminmxid): multixacts since the oldest unfrozen multixact ID in the database.', type: 'gauge', labelNames: ['target', 'database'] },
  { name: 'upkeep_postgres_freeze_max_age', help: 'The autovacuum_freeze_max_age setting: the xid age at which autovacuum forces a freezing vacuum.', type: 'gauge', labelNames: ['target'] },
  { name: 'upkeep_postgres_table_xid_age', help: 'age(relfrozenxid) of the table or of its TOAST table, whichever is older; the top tables.limit tables by age.', type: 'gauge', labelNames: ['target', 'database', 'schema', 'table'] },
];

// Every database, not only the watched ones: IDs are shared by the whole server, and a forgotten
// database (template0 included) stops writes everywhere when it reaches the limit.
const DATABASE_AGES_SQL = `
SELECT datname AS database, age(datfrozenxid)::float8 AS xid_age, mxid_age(datminmxid)::float8 AS mxid_age,
       current_setting('autovacuum_freeze_max_age')::float8 AS freeze_max_age
FROM pg_database ORDER BY datname`;

// Plain tables and materialized views (partitioned parents have no storage and no relfrozenxid).
// A table's VACUUM freezes its TOAST table too, so the older of the two is the table's age. System
// schemas are left out as for dead tuples (pg_temp_N too: autovacuum cannot vacuum temporary tables).
// Only the database's oldest tables come back (tables.limit, see readTop).
const TABLE_AGES = named('table_ages', `
SELECT * FROM (
  SELECT n.nspname::text COLLATE "C" AS schema, c.relname::text COLLATE "C" AS "table",
         greatest(age(c.relfrozenxid), age(t.relfrozenxid))::float8 AS xid_age
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
  WHERE c.relkind IN ('r', 'm')
    AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
) s
WHERE ${afterCursor('xid_age')}
ORDER BY xid_age DESC, schema, "table" LIMIT $1`);

const databaseRow = onFirstUse(() => z.object({ database: z.string(), xid_age: z.number(), mxid_age: z.number(), freeze_max_age: z.number() }));
const TABLE_AGE_COLUMNS: readonly StatColumn[] = [{ name: 'xid_age', nullable: false }];

/** Per-database ages and the setting, read once per target (any database sees them all). */
export async function readWraparound(pool: pg.Pool, target: string): Promise<Reading[]> {
  const rows = z.array(databaseRow).parse((await pool.query(DATABASE_AGES_SQL)).rows);
  const readings: Reading[] = rows.flatMap((row) => [
    { family: 'upkeep_postgres_xid_age', labels: { target, database: row.database }, value: row.xid_age },
    { family: 'upkeep_postgres_mxid_age', labels: { target, database: row.database }, value: row.mxid_age },
  ]);
  const setting = rows[0]?.freeze_max_age;
  if (setting !== undefined) readings.push({ family: 'upkeep_postgres_freeze_max_age', labels: { target }, value: setting });
  return readings;
}

/**
 * age(relfrozenxid) of the oldest `limit` user tables the filters admit in the database this pool
 * connects to, ties by name (column xid_age): the rows the selection across databases would keep of
 * this database.
 */
export async function readTableXidAges(stream: RowStream, database: string, filter: TablePatterns & { readonly limit: number }, options?: ReadingOptions): Promise<TableColumns> {
  const reading = new TableColumns(database, TABLE_AGE_COLUMNS, options);
  await readTop(stream, TABLE_AGES, reading, 'xid_age', filter);
  return reading;
}
