import type { FamilySpec, Labels } from './framework/types.js';

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

/** The autovacuum families of a block of tables: a column of the stats reading per family and kind. */
export const AUTOVACUUM_COLUMNS: readonly { readonly family: string; readonly column: string; readonly labels?: Labels }[] = [
  { family: 'upkeep_postgres_vacuums_total', column: 'vacuum_count', labels: { kind: 'manual' } },
  { family: 'upkeep_postgres_vacuums_total', column: 'autovacuum_count', labels: { kind: 'auto' } },
  { family: 'upkeep_postgres_analyzes_total', column: 'analyze_count', labels: { kind: 'manual' } },
  { family: 'upkeep_postgres_analyzes_total', column: 'autoanalyze_count', labels: { kind: 'auto' } },
  { family: 'upkeep_postgres_mods_since_analyze', column: 'mods_since_analyze' },
  { family: 'upkeep_postgres_last_autovacuum_timestamp_seconds', column: 'last_autovacuum' },
  { family: 'upkeep_postgres_last_autoanalyze_timestamp_seconds', column: 'last_autoanalyze' },
];
