import type pg from 'pg';
import { z } from 'zod';
import { onFirstUse } from '../../lazy-schema.js';

// A running VACUUM's progress (pg_stat_progress_vacuum, one row per vacuuming backend): the
// collector exports it for every vacuum on the server, postgres.vacuum journals its own.
// To a role without pg_read_all_stats, the vacuum of a role whose privileges it lacks (autovacuum
// workers included: they run as no role) is a row with its pid and database and every other column
// NULL: nothing to report of it, so it is skipped. It failed the collector's whole reading before
// (the row's parse), and every running vacuum's series went with it. postgres.vacuum watches its
// own backend, which its role always sees.

const PROGRESS_SQL = `
SELECT p.pid, p.datname AS database, p.relid::int AS "tableOid", p.phase,
       CASE WHEN a.backend_type = 'autovacuum worker' THEN 'auto' ELSE 'manual' END AS kind,
       p.heap_blks_total::float8 AS "heapBlocks", p.heap_blks_scanned::float8 AS "heapBlocksScanned",
       p.heap_blks_vacuumed::float8 AS "heapBlocksVacuumed"
  FROM pg_stat_progress_vacuum p LEFT JOIN pg_stat_activity a ON a.pid = p.pid
 WHERE ($1::int IS NULL OR p.pid = $1)
   AND p.relid IS NOT NULL AND p.phase IS NOT NULL AND p.heap_blks_total IS NOT NULL AND p.heap_blks_scanned IS NOT NULL
   AND p.heap_blks_vacuumed IS NOT NULL
 ORDER BY p.pid`;

const progressRow = onFirstUse(() => z.object({
  pid: z.number(),
  database: z.string(),
  tableOid: z.number(),
  phase: z.string(),
  kind: z.enum(['auto', 'manual']),
  heapBlocks: z.number(),
  heapBlocksScanned: z.number(),
  heapBlocksVacuumed: z.number(),
}));
export type VacuumProgress = z.infer<typeof progressRow>;

/** Every vacuum running on the server, or only the one of backend `pid`. */
export async function vacuumProgress(client: pg.Client | pg.Pool, pid: number | null = null): Promise<VacuumProgress[]> {
  return z.array(progressRow).parse((await client.query(PROGRESS_SQL, [pid])).rows);
}
