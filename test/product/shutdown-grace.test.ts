import pg from 'pg';
import t, { type Test } from 'tap';
import { z } from 'zod';
import { startTestPostgres, tableStats, tableWithDeadTuples } from '../actions/postgres-fixture.js';
import type { PostgresServer } from '../fixtures/postgres.js';
import { waitFor } from '../fixtures/ports.js';
import { serveInstalled, writeConfig, type Served } from './installed.js';

/**
 * SIGTERM while a run is in flight: the installed serve lets it finish within the shutdown grace
 * (server.shutdownTimeoutSeconds less 2 s, or half of it), and interrupts it when the grace runs
 * out. The run is a real VACUUM held in PostgreSQL's lock queue by a test session that has the
 * table locked, so the test, not a clock, decides when it can finish.
 */
const accepted = z.object({ runId: z.string() });

async function holdTableLock(t: Test, server: PostgresServer, table: string): Promise<pg.Client> {
  const holder = new pg.Client({ connectionString: server.url('app') });
  await holder.connect();
  t.teardown(() => holder.end().catch(() => undefined));
  await holder.query('begin');
  await holder.query(`lock table public.${table} in share update exclusive mode`);
  return holder;
}

/** Starts a manual VACUUM of the locked table and waits until PostgreSQL has it waiting for the lock. */
async function vacuumWaitingForLock(served: Served, server: PostgresServer, table: string): Promise<string> {
  const response = await fetch(`${served.base}/remediations/postgres.vacuum`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ params: { target: 'main', database: 'app', table: `public.${table}` } }),
  });
  const { runId } = accepted.parse(await response.json());
  await waitFor('the VACUUM to wait for the table lock', async () => {
    const waiting = await server.query("select pid from pg_stat_activity where query ilike 'vacuum%' and wait_event_type = 'Lock'", [], 'app');
    if (waiting.length !== 1) throw new Error(`${waiting.length} VACUUMs waiting`);
  });
  return runId;
}

function finished(served: Served, runId: string): Record<string, unknown> | undefined {
  return served.logLines().find((line) => line.msg === 'run finished' && line.runId === runId);
}

t.test('SIGTERM during a VACUUM: the installed serve lets it finish within the grace, or interrupts it when the grace runs out', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  // A table each: the first case's VACUUM leaves its table with nothing for another to do.
  await tableWithDeadTuples(server, 'app', 'orders');
  await tableWithDeadTuples(server, 'app', 'invoices');
  const targets = { postgres: [{ name: 'main', url: server.url('app') }] };

  t.test('the lock is let go two seconds after SIGTERM, inside the 8 s grace: the run succeeds and upkeep exits 0', async (t) => {
    const { file } = await writeConfig(t, { targets, remediation: { lockTimeoutSeconds: 120 }, server: { shutdownTimeoutSeconds: 10 } });
    const served = await serveInstalled(t, file);
    const holder = await holdTableLock(t, server, 'orders');
    const runId = await vacuumWaitingForLock(served, server, 'orders');
    served.child.kill('SIGTERM');
    await served.logged('upkeep to say it waits for the run', (line) => line.msg === 'waiting for the runs in flight to finish');
    // Shutting down, and still alive: the run holds it.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    t.ok(served.alive(), 'still running two seconds after SIGTERM, waiting for the run');
    served.child.kill('SIGTERM');
    await served.logged('upkeep to note the second SIGTERM', (line) => line.msg === 'already shutting down' && line.signal === 'SIGTERM');
    t.ok(served.alive(), 'a second SIGTERM does not end it either');
    await holder.query('commit');
    t.equal(await served.stop(), 0, 'exits 0 once the run has finished');
    t.match(finished(served, runId), { level: 30, status: 'success' }, 'the run succeeded', { output: served.output() });
    t.equal((await tableStats(server, 'app', 'orders')).vacuumCount, 1, 'the table was vacuumed');
    const waiting = served.logLines().find((line) => line.msg === 'waiting for the runs in flight to finish');
    t.match(waiting, { level: 30, runs: 1 });
    t.ok(Number(waiting?.graceSeconds) > 7 && Number(waiting?.graceSeconds) <= 8, `the grace left is under 8 s: ${String(waiting?.graceSeconds)}`);
    t.same(served.logLines().filter((line) => typeof line.level !== 'number' || line.level >= 40), [], 'nothing at warn or above');
  });

  t.test('the lock is held on: at the end of the 1.5 s grace the run is interrupted, its VACUUM cancelled, and upkeep exits 0', async (t) => {
    const { file } = await writeConfig(t, { targets, remediation: { lockTimeoutSeconds: 120 }, server: { shutdownTimeoutSeconds: 3 } });
    const served = await serveInstalled(t, file);
    const holder = await holdTableLock(t, server, 'invoices');
    const runId = await vacuumWaitingForLock(served, server, 'invoices');
    t.equal(await served.stop(), 0, 'exits 0 within the shutdown deadline');
    t.match(finished(served, runId), { level: 50, status: 'interrupted', reason: 'upkeep shut down during the run' }, 'the run is interrupted', { output: served.output() });
    t.match(served.logLines().find((line) => line.msg === 'runs still in flight when the shutdown grace ran out are interrupted'), { level: 40, runs: 1 });
    t.same(await server.query("select pid from pg_stat_activity where query ilike 'vacuum%'", [], 'app'), [], 'no VACUUM is left in PostgreSQL');
    await holder.query('commit');
  });
});
