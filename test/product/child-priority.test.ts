import pg from 'pg';
import t from 'tap';
import { z } from 'zod';
import { startTestPostgres } from '../actions/postgres-fixture.js';
import { waitFor } from '../fixtures/ports.js';
import { childrenOf, procStat } from '../fixtures/procs.js';
import { tempDir } from '../http/helpers.js';
import { serveInstalled, writeConfig } from './installed.js';

/**
 * The commands a run starts (pg_dump here) inherit the executor thread's priority, 10 nice levels
 * below the main thread's (src/engine/executor-worker.ts), as `nice -n 10 pg_dump` in a cron job
 * would: docs/configuration.md (`remediation.executor`) says so, and this checks it on the installed
 * serve. The dump is held in PostgreSQL's lock queue by a test session, so the test reads its
 * priority while it runs and then lets it finish.
 */

const accepted = z.object({ runId: z.string() });
const run = z.object({ status: z.string() });

t.test('a backup\'s pg_dump runs 10 nice levels below the installed serve', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await server.query('create table orders (id int)', [], 'app');
  const backups = await tempDir(t, 'upkeep-backups-');
  const { file } = await writeConfig(t, {
    targets: {
      postgres: [{ name: 'main', url: server.url('app') }],
      backups: [{ name: 'app', dir: backups, pattern: 'app_*.sql.gz', source: { target: 'main', database: 'app' } }],
    },
  });
  const served = await serveInstalled(t, file);
  const holder = new pg.Client({ connectionString: server.url('app') });
  await holder.connect();
  t.teardown(() => holder.end().catch(() => undefined));
  await holder.query('begin');
  await holder.query('lock table public.orders in access exclusive mode');

  const response = await fetch(`${served.base}/remediations/backup.pg_dump`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ params: { backup: 'app' } }),
  });
  t.equal(response.status, 202, 'the backup is accepted');
  const { runId } = accepted.parse(await response.json());
  // env and bin/upkeep exec node, and setpriv execs pg_dump: pg_dump is a child of the served PID.
  const pid = served.child.pid ?? 0;
  const dumps = await waitFor('pg_dump to wait for the table lock', async () => {
    const found = (await childrenOf(pid)).filter((child) => child.name === 'pg_dump');
    if (found.length !== 1) throw new Error(`${found.length} pg_dump processes`);
    return found;
  }, 60_000, 100);
  const own = await procStat(`/proc/${pid}/stat`);
  t.same(dumps.map((dump) => dump.nice), [Math.min(19, own.nice + 10)], `pg_dump at nice ${Math.min(19, own.nice + 10)}, upkeep at ${own.nice}`);

  await holder.query('commit');
  const finished = await waitFor('the backup to finish', async () => {
    const record = run.parse(await (await fetch(`${served.base}/runs/${runId}`)).json());
    if (record.status === 'queued' || record.status === 'running') throw new Error(record.status);
    return record;
  }, 60_000, 100);
  t.equal(finished.status, 'success', 'and the backup succeeds once the lock is gone');
});
