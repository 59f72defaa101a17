import type pg from 'pg';
import { vacuumProgress } from '../systems/postgres/progress.js';
import type { FamilySpec, Reading } from './framework/types.js';

// VACUUMs running now, manual and auto (pg_stat_progress_vacuum): how far each has read its
// table. Server-wide, so the table is named by its oid (resolve it in its database with
// `SELECT OID::regclass`); the series last as long as the vacuum.

const VACUUM = ['target', 'database', 'pid'];

export const PROGRESS_FAMILIES: readonly FamilySpec[] = [
  { name: 'upkeep_postgres_vacuum_running_info', help: 'A VACUUM running now (pg_stat_progress_vacuum): its table\'s oid, kind (manual or auto) and phase; absent when none runs. Without pg_read_all_stats (in pg_monitor), only the role\'s own vacuums.', type: 'gauge', labelNames: [...VACUUM, 'table_oid', 'kind', 'phase'] },
  { name: 'upkeep_postgres_vacuum_heap_blocks', help: 'Heap blocks of the table a running VACUUM will scan (heap_blks_total).', type: 'gauge', labelNames: VACUUM },
  { name: 'upkeep_postgres_vacuum_heap_blocks_scanned', help: 'Heap blocks a running VACUUM has scanned so far (heap_blks_scanned).', type: 'gauge', labelNames: VACUUM },
];

export async function readProgress(pool: pg.Pool, target: string): Promise<Reading[]> {
  const readings: Reading[] = [];
  for (const vacuum of await vacuumProgress(pool)) {
    const labels = { target, database: vacuum.database, pid: String(vacuum.pid) };
    readings.push(
      { family: 'upkeep_postgres_vacuum_running_info', labels: { ...labels, table_oid: String(vacuum.tableOid), kind: vacuum.kind, phase: vacuum.phase }, value: 1 },
      { family: 'upkeep_postgres_vacuum_heap_blocks', labels, value: vacuum.heapBlocks },
      { family: 'upkeep_postgres_vacuum_heap_blocks_scanned', labels, value: vacuum.heapBlocksScanned },
    );
  }
  return readings;
}
