import t from 'tap';
import { startPostgres, type PostgresServer } from '../fixtures/postgres.js';
import { waitFor } from '../fixtures/ports.js';
import { byLabels, testApp, type Sample } from './helpers.js';

const TABLE_KEYS = ['database', 'schema', 'table'];

/** pg_stat_user_tables itself, one column, as "database/schema/table" -> value (NULLs left out). */
async function column(server: PostgresServer, expression: string): Promise<Map<string, number>> {
  const rows = await server.query<{ schemaname: string; relname: string; value: number | null }>(`SELECT schemaname, relname, (${expression})::float8 AS value FROM pg_stat_user_tables`);
  return new Map(rows.filter((row) => row.value !== null).map((row) => [`postgres/${row.schemaname}/${row.relname}`, Number(row.value)]));
}

function byKind(samples: Sample[], name: string, kind: string): Map<string, number> {
  return byLabels(samples.filter((sample) => sample.labels.kind === kind), name, TABLE_KEYS);
}

t.test('autovacuum apart from manual runs: times, counts by kind and modifications, equal to pg_stat_user_tables', async (t) => {
  // Autovacuum on and eager, so it really runs on the busy table while the quiet one is vacuumed by hand.
  const server = await startPostgres({ settings: { autovacuum_naptime: '1s', autovacuum_vacuum_threshold: '10', autovacuum_vacuum_scale_factor: '0', autovacuum_analyze_threshold: '10', autovacuum_analyze_scale_factor: '0' } });
  t.teardown(() => server.destroy());
  await server.query('CREATE TABLE busy (id int); CREATE TABLE quiet (id int) WITH (autovacuum_enabled = off)');
  await server.query('INSERT INTO busy SELECT generate_series(1, 1000); DELETE FROM busy WHERE id <= 500');
  await server.query('INSERT INTO quiet SELECT generate_series(1, 100)');
  await server.query('VACUUM quiet');
  await server.query('VACUUM ANALYZE quiet');
  await server.query('INSERT INTO quiet SELECT generate_series(1, 7)');
  await waitFor('autovacuum and autoanalyze of busy', async () => {
    const [row] = await server.query<{ autovacuum_count: string; autoanalyze_count: string }>("SELECT autovacuum_count, autoanalyze_count FROM pg_stat_user_tables WHERE relname = 'busy'");
    if (Number(row?.autovacuum_count) < 1 || Number(row?.autoanalyze_count) < 1) throw new Error(JSON.stringify(row));
  }, 60_000, 200);
  await server.query('ALTER TABLE busy SET (autovacuum_enabled = off)');

  const app = await testApp(t, `targets:\n  postgres:\n    - { name: main, url: "${server.url()}", databases: [postgres] }\n`);
  // The stats of the backends that wrote reach the views within a second or so: scrape until they agree.
  const samples = await waitFor('a scrape that equals pg_stat_user_tables', async () => {
    const current = (await app.scrape()).samples;
    const vacuums = byKind(current, 'upkeep_postgres_vacuums_total', 'manual');
    const truth = await column(server, 'vacuum_count');
    if (JSON.stringify([...vacuums].sort()) !== JSON.stringify([...truth].sort())) throw new Error('not yet');
    return current;
  }, 15_000, 200);

  t.same(byLabels(samples, 'upkeep_postgres_last_autovacuum_timestamp_seconds', TABLE_KEYS), await column(server, 'extract(epoch FROM last_autovacuum)'), 'last_autovacuum: busy only');
  t.same(byLabels(samples, 'upkeep_postgres_last_autoanalyze_timestamp_seconds', TABLE_KEYS), await column(server, 'extract(epoch FROM last_autoanalyze)'));
  t.same(byKind(samples, 'upkeep_postgres_vacuums_total', 'manual'), await column(server, 'vacuum_count'));
  t.same(byKind(samples, 'upkeep_postgres_vacuums_total', 'auto'), await column(server, 'autovacuum_count'));
  t.same(byKind(samples, 'upkeep_postgres_analyzes_total', 'manual'), await column(server, 'analyze_count'));
  t.same(byKind(samples, 'upkeep_postgres_analyzes_total', 'auto'), await column(server, 'autoanalyze_count'));
  t.same(byLabels(samples, 'upkeep_postgres_mods_since_analyze', TABLE_KEYS), await column(server, 'n_mod_since_analyze'));
  t.equal(byKind(samples, 'upkeep_postgres_vacuums_total', 'manual').get('postgres/public/quiet'), 2, 'two manual vacuums of quiet');
  t.equal(byKind(samples, 'upkeep_postgres_vacuums_total', 'auto').get('postgres/public/quiet'), 0, 'and no autovacuum');
  t.equal(byLabels(samples, 'upkeep_postgres_mods_since_analyze', TABLE_KEYS).get('postgres/public/quiet'), 7, 'the rows inserted since its ANALYZE');
  t.notOk(byLabels(samples, 'upkeep_postgres_last_autovacuum_timestamp_seconds', TABLE_KEYS).has('postgres/public/quiet'), 'never autovacuumed: no series');
  const merged = byLabels(samples, 'upkeep_postgres_last_vacuum_timestamp_seconds', TABLE_KEYS);
  t.same(merged, await column(server, 'extract(epoch FROM greatest(last_vacuum, last_autovacuum))'), 'the merged timestamps stay as they were');
});
