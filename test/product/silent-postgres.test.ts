import t from 'tap';
import { z } from 'zod';
import { waitFor } from '../fixtures/ports.js';
import { silentServer } from '../fixtures/silent-server.js';
import { serveInstalled, writeConfig } from './installed.js';

/**
 * A PostgreSQL that takes connections and never answers (a dead proxy, a server stuck with a full
 * backlog): the installed serve's runs against it end at their deadline, dry runs too (they hold
 * a slot until then), and a shutdown during one ends within its grace with the run journalled
 * interrupted. Before, a connection attempt ignored the run's abort: the runs ended 5 s after
 * their deadline ("deadline of 1s passed: deadline of 1s passed"), and SIGTERM during one went
 * past the shutdown deadline (exit 1, the run left "queued").
 */
const run = z.object({ id: z.string(), status: z.string(), error: z.string().optional(), reason: z.string().optional(), startedAt: z.string(), finishedAt: z.string() });
const page = z.object({ runs: z.array(z.object({ id: z.string(), status: z.string() })) });

t.test('the installed serve against a PostgreSQL that never answers: runs end at their deadline, a shutdown within its grace', async (t) => {
  const { file } = await writeConfig(t, {
    targets: { postgres: [{ name: 'stuck', url: (await silentServer(t)).url }] },
    collectors: { disabled: ['postgres'] },
    server: { shutdownTimeoutSeconds: 4 },
  });
  const served = await serveInstalled(t, file);
  const vacuum = (query: string, body: Record<string, unknown>) => fetch(`${served.base}/remediations/postgres.vacuum${query}`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ params: { target: 'stuck', database: 'app', table: 'public.orders' }, ...body }),
  });

  for (const dryRun of [false, true]) {
    const finished = run.parse(await (await vacuum('?wait=true', { timeoutSeconds: 1, dryRun })).json());
    t.match(finished, { status: 'failure', error: 'deadline of 1s passed' }, `${dryRun ? 'a dry run' : 'a run'} fails at its deadline, said once`);
    const seconds = (Date.parse(finished.finishedAt) - Date.parse(finished.startedAt)) / 1000;
    t.ok(seconds < 3, `${dryRun ? 'the dry run' : 'the run'} ended ${seconds} s after it started, at its 1 s deadline (it was 6 s)`);
  }

  // A run still connecting when SIGTERM comes: at the end of the 2 s grace it is interrupted, the
  // client waiting on it gets its record, and upkeep exits 0.
  const waiting = vacuum('?wait=true', { timeoutSeconds: 60 });
  await waitFor('the run to start', async () => {
    const { runs } = page.parse(await (await fetch(`${served.base}/runs?status=running`)).json());
    if (runs.length !== 1) throw new Error(`${runs.length} running`);
  });
  t.equal(await served.stop(), 0, 'exits 0 within the shutdown deadline', { output: served.output() });
  const interrupted = run.parse(await (await waiting).json());
  t.match(interrupted, { status: 'interrupted', reason: 'upkeep shut down during the run' }, 'the waiting client gets the interrupted run');
  const lines = served.logLines();
  t.match(lines.find((line) => line.msg === 'runs still in flight when the shutdown grace ran out are interrupted'), { level: 40, runs: 1 });
  t.match(lines.find((line) => line.msg === 'run finished' && line.runId === interrupted.id), { status: 'interrupted' });
  t.same(lines.filter((line) => typeof line.msg === 'string' && line.msg.startsWith('shutdown deadline passed')), [], 'the deadline was not reached');
  t.match(lines.at(-1), { level: 30, msg: 'stopped' });
});
