import { tableFilter, type TablePatterns } from '../systems/postgres/watched.js';
import type { AutovacuumStats } from './postgres-autovacuum.js';

/** One row of pg_stat_user_tables, as the postgres collector exports it. */
export interface TableStats extends AutovacuumStats {
  readonly database: string;
  readonly schema: string;
  readonly table: string;
  readonly deadTuples: number;
  readonly liveTuples: number;
  /** Unix seconds of the later of the manual and the auto run; null when never. */
  readonly lastVacuumSeconds: number | null;
  readonly lastAnalyzeSeconds: number | null;
}

export interface TableFilter extends TablePatterns {
  readonly minDeadTuples: number;
  readonly limit: number;
}

/**
 * Returns a function that bounds the per-table series of one target: keep tables whose
 * "schema.table" matches an include pattern (all when none) and no exclude pattern, with at
 * least minDeadTuples dead tuples, then the top `limit` by dead tuples across all databases.
 * Ties break by database, schema and table name so the series set is stable between scrapes.
 */
export function tableSelector(filter: TableFilter): (tables: readonly TableStats[]) => TableStats[] {
  const admitted = tableFilter(filter);
  const wanted = (table: TableStats): boolean => table.deadTuples >= filter.minDeadTuples && admitted(table.schema, table.table);
  return (tables) => tables.filter(wanted).sort(byDeadTuplesThenName).slice(0, filter.limit);
}

function byDeadTuplesThenName(a: TableStats, b: TableStats): number {
  return b.deadTuples - a.deadTuples
    || compare(a.database, b.database)
    || compare(a.schema, b.schema)
    || compare(a.table, b.table);
}

function compare(a: string, b: string): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}
