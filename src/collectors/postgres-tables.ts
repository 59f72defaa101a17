import type { TablePatterns } from '../systems/postgres/watched.js';
import { selectTop, type Selection, type SelectionArrays, type TableColumns } from './postgres-table-columns.js';

export interface TableFilter extends TablePatterns {
  readonly minDeadTuples: number;
  readonly limit: number;
}

/**
 * Bounds the per-table series of one target: keep tables whose "schema.table" matches an include
 * pattern (all when none) and no exclude pattern, with at least minDeadTuples dead tuples, then the
 * top `limit` by dead tuples across all databases. Ties break by database, schema and table name
 * so the series set is stable between scrapes.
 */
export function selectTables(readings: readonly TableColumns[], filter: TableFilter, arrays?: SelectionArrays): Selection {
  return selectTop(readings, 'dead_tuples', { ...filter, minimum: filter.minDeadTuples }, arrays);
}
