import type pg from 'pg';
import { z } from 'zod';
import { prepared } from './prepared.js';

/**
 * What a postgres target watches: its databases and the user tables its `tables` filters admit.
 * The collector exports metrics for exactly these, and remediations started by an alert or a
 * schedule act on nothing else, so both use the functions here.
 */

/**
 * Schemas PostgreSQL keeps for itself: pg_catalog, pg_toast, pg_temp_N, pg_toast_temp_N (the
 * server refuses to create any other "pg_" schema) and information_schema.
 */
export function isSystemSchema(schema: string): boolean {
  return schema === 'information_schema' || schema.startsWith('pg_');
}

export interface TablePatterns {
  readonly include: readonly string[];
  readonly exclude: readonly string[];
}

/** Whether the filters admit a table: "schema.table" matches an include pattern (any, when none) and no exclude pattern. */
export function tableFilter(filter: TablePatterns): (schema: string, table: string) => boolean {
  const include = filter.include.map((pattern) => new RegExp(pattern));
  const exclude = filter.exclude.map((pattern) => new RegExp(pattern));
  // Without patterns, no "schema.table" text is made: the collector asks for every table it reads.
  if (include.length === 0 && exclude.length === 0) return () => true;
  return (schema, table) => {
    const name = `${schema}.${table}`;
    if (include.length > 0 && !include.some((pattern) => pattern.test(name))) return false;
    return !exclude.some((pattern) => pattern.test(name));
  };
}

// What `databases: auto` watches: every database this role may connect to, templates excluded.
const DISCOVER = prepared('discover_databases', `
SELECT datname FROM pg_database
WHERE datallowconn AND NOT datistemplate AND has_database_privilege(datname, 'CONNECT')
ORDER BY datname`);

const databaseRows = z.array(z.object({ datname: z.string() }));

export async function discoverDatabases(connection: pg.Pool | pg.Client): Promise<string[]> {
  const { rows } = await connection.query(DISCOVER());
  return databaseRows.parse(rows).map((row) => row.datname);
}

/** The database named in the target's URL (discovery runs there), "postgres" when it names none. */
export function urlDatabase(url: string): string {
  const path = new URL(url).pathname.slice(1);
  return path === '' ? 'postgres' : decodeURIComponent(path);
}
