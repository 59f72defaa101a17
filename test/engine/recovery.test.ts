import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import t from 'tap';
import { stringify } from 'yaml';
import { z } from 'zod';
import { freePort, waitFor } from '../fixtures/ports.js';
import { finishedRun, journalLines, startApp, tempDir, testConfig } from '../http/helpers.js';
import { startTestPostgres, tableWithDeadTuples } from '../actions/postgres-fixture.js';

t.test('kill -9 during a long run, then restart: the run is journalled interrupted', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await tableWithDeadTuples(server, 'app', 'orders');
  const stateDir = await tempDir(t);
  const raw = { state: { dir: stateDir }, targets: { postgres: [{ name: 'main', url: server.url('app') }] }, remediation: { lockTimeoutSeconds: 600, cooldownSeconds: 0 } };
  const configFile = join(stateDir, 'upkeep.yml');
  await writeFile(configFile, stringify(raw));

  // Another session holds the table, so the child's VACUUM waits for as long as we like.
  const locker = new pg.Client({ connectionString: server.url('app') });
  await locker.connect();
  await locker.query('begin; lock table orders in access exclusive mode');
  t.teardown(async () => { await locker.query('commit').catch(() => undefined); await locker.end(); });

  const port = await freePort();
  const child = spawn(process.execPath, ['bin/upkeep.js', 'serve', '--config', configFile, '--port', String(port), '--log-level', 'warn'], { stdio: 'ignore' });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null && child.pid) process.kill(child.pid, 'SIGKILL'); });
  await waitFor('upkeep serve', async () => { const response = await fetch(`http://127.0.0.1:${port}/healthz`); if (!response.ok) throw new Error(String(response.status)); }, 60_000);

  const response = await fetch(`http://127.0.0.1:${port}/remediations/postgres.vacuum`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ params: { target: 'main', database: 'app', table: 'public.orders' } }),
  });
  t.equal(response.status, 202);
  const { runId } = z.object({ runId: z.string() }).parse(await response.json());
  await waitFor('the VACUUM to be running', async () => {
    const waiting = await server.query("select pid from pg_stat_activity where application_name like 'upkeep:%' and query like 'VACUUM%'");
    if (waiting.length !== 1) throw new Error('not running yet');
  });
  t.equal((await journalLines(stateDir)).filter((line) => line.id === runId).at(-1)?.status, 'running', 'journalled running before the crash');

  process.kill(child.pid ?? 0, 'SIGKILL');
  t.equal(await exited, 'SIGKILL');

  const app = await startApp(t, testConfig(raw));
  const run = await finishedRun(app, runId);
  t.equal(run.status, 'interrupted');
  t.match(run.reason, /upkeep stopped while the run was in progress/);
  t.equal(run.pid, child.pid);
  const metrics = (await app.fastify.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(metrics, /upkeep_remediation_runs_total\{remediation="postgres\.vacuum",outcome="failure"\} 1/, 'the interrupted run counts as a failure');
});
