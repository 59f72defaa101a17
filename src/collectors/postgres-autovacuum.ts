import { column } from './framework/block.js';
import type { BlockColumn, FamilySpec } from './framework/types.js';

// Autovacuum made visible per table: its own times apart from manual runs (a stalled autovacuum
// hides behind a nightly manual VACUUM in the merged timestamps), run counts by kind, and the
// modifications the next ANALYZE will account for.

const TABLE = ['target', 'database', 'schema', 'table'];
const TABLE_KIND = [...TABLE, 'kind'];

export const AUTOVACUUM_FAMILIES: readonly FamilySpec[] = [
  { name: 'upkeep_postgres_last_autovacuum_timestamp_seconds', help: 'Unix time of the last autovacuum of the table (pg_stat_user_tables.last_autovacuum); absent when never.', type: 'gauge', labelNames: TABLE },
  { name: 'upkeep_postgres_last_autoanalyze_timestamp_seconds', help: 'Unix time of the last autoanalyze of the table (last_autoanalyze); absent when never.', type: 'gauge', labelNames: TABLE },
  { name: 'upkeep_postgres_vacuums_total', help: 'Vacuums of the table since the statistics were reset, by kind: manual (vacuum_count) or auto (autovacuum_count).', type: 'counter', labelNames: TABLE_KIND },
  { name: 'upkeep_postgres_analyzes_total', help: 'Analyzes of the table since the statistics were reset, by kind: manual (analyze_count) or auto (autoanalyze_count).', type: 'counter', labelNames: TABLE_KIND },
  { name: 'upkeep_postgres_mods_since_analyze', help: 'Rows modified since the table was last analyzed (n_mod_since_analyze).', type: 'gauge', labelNames: TABLE },
];

/** The autovacuum columns of one pg_stat_user_tables row. */
export interface AutovacuumStats {
  /** Unix seconds; null when never. */
  readonly lastAutovacuumSeconds: number | null;
  readonly lastAutoanalyzeSeconds: number | null;
  readonly vacuumCount: number;
  readonly autovacuumCount: number;
  readonly analyzeCount: number;
  readonly autoanalyzeCount: number;
  readonly modsSinceAnalyze: number;
}

/** The autovacuum families of a block of tables, one column per family and kind. */
export function autovacuumColumns(tables: readonly AutovacuumStats[]): BlockColumn[] {
  return [
    column('upkeep_postgres_vacuums_total', tables, (stats) => stats.vacuumCount, { kind: 'manual' }),
    column('upkeep_postgres_vacuums_total', tables, (stats) => stats.autovacuumCount, { kind: 'auto' }),
    column('upkeep_postgres_analyzes_total', tables, (stats) => stats.analyzeCount, { kind: 'manual' }),
    column('upkeep_postgres_analyzes_total', tables, (stats) => stats.autoanalyzeCount, { kind: 'auto' }),
    column('upkeep_postgres_mods_since_analyze', tables, (stats) => stats.modsSinceAnalyze),
    column('upkeep_postgres_last_autovacuum_timestamp_seconds', tables, (stats) => stats.lastAutovacuumSeconds),
    column('upkeep_postgres_last_autoanalyze_timestamp_seconds', tables, (stats) => stats.lastAutoanalyzeSeconds),
  ];
}
