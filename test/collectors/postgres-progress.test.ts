import pg from 'pg';
import t from 'tap';
import { z } from 'zod';
import { readProgress } from '../../src/collectors/postgres-progress.js';
import { waitFor } from '../fixtures/ports.js';
import { slowVacuumTable, startTestPostgres } from '../actions/postgres-fixture.js';

t.test('a running VACUUM: its info, heap blocks and blocks scanned, as pg_stat_progress_vacuum has them; none once it ends', async (t) => {
  const server = await startTestPostgres(t);
  await slowVacuumTable(server, 'app', 'orders');
  const pool = new pg.Pool({ connectionString: server.url('postgres'), max: 1 });
  t.teardown(() => pool.end());
  t.same(await readProgress(pool, 'main'), [], 'nothing runs');

  const vacuuming = new pg.Client({ connectionString: server.url('app') });
  await vacuuming.connect();
  t.teardown(() => vacuuming.end());
  const [{ oid, pid }] = z.tuple([z.object({ oid: z.number(), pid: z.number() })]).parse((await vacuuming.query("select 'orders'::regclass::oid::int as oid, pg_backend_pid() as pid")).rows);
  const vacuum = vacuuming.query('vacuum orders');

  const readings = await waitFor('the vacuum in progress', async () => {
    const found = await readProgress(pool, 'main');
    if (found.length === 0) throw new Error('not seen yet');
    return found;
  }, 60_000, 50);
  const labels = { target: 'main', database: 'app', pid: String(pid) };
  t.match(readings, [
    { family: 'upkeep_postgres_vacuum_running_info', labels: { ...labels, table_oid: String(oid), kind: 'manual', phase: /^[a-z ]+$/ }, value: 1 },
    { family: 'upkeep_postgres_vacuum_heap_blocks', labels, value: Number },
    { family: 'upkeep_postgres_vacuum_heap_blocks_scanned', labels, value: Number },
  ]);
  t.equal(readings.length, 3);
  const [row] = await server.query<{ total: string }>('select heap_blks_total as total from pg_stat_progress_vacuum where pid = $1', [pid]);
  t.equal(readings[1]?.value, Number(row?.total), 'heap_blks_total as the server has it');
  await vacuum;
  t.same(await readProgress(pool, 'main'), [], 'gone once it ends');
});
