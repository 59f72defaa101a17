import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { startTestPostgres } from '../actions/postgres-fixture.js';
import { waitFor } from '../fixtures/ports.js';
import { tempDir, VACUUM_RULE } from '../http/helpers.js';
import { serveInstalled, writeConfig, type Served } from './installed.js';

const run = promisify(execFile);

/** GET /metrics, given up on after 9 s: under the state store's 10 s statement timeout a scrape hung for. */
async function scrape(served: Served): Promise<{ status: number; text: string }> {
  const response = await fetch(`${served.base}/metrics`, { signal: AbortSignal.timeout(9_000) });
  return { status: response.status, text: await response.text() };
}

// A helper found every replica's /metrics failing (an empty reply) while state.postgres was down,
// and hanging 10 s before failing while it was stalled: the circuit breakers' gauge read the
// database in every scrape, so every target's series were lost with it.
t.test('the installed serve: /metrics answers with every target\'s series while state.postgres is down or stalled', async (t) => {
  const target = await startTestPostgres(t);
  await target.query('create database app');
  const state = await startTestPostgres(t);
  await state.query('create database upkeep');
  const { file } = await writeConfig(t, {
    targets: { postgres: [{ name: 'main', url: target.url('app') }] },
    remediation: { rules: [VACUUM_RULE] },
    state: { dir: await tempDir(t), postgres: { url: state.url('upkeep') } },
  });
  const served = await serveInstalled(t, file);
  const series = ['upkeep_postgres_up{target="main"} 1', 'upkeep_remediation_circuit_open{remediation="postgres.vacuum"} 0'];
  // A replica collects nothing for its first two heartbeats (docs/replicas.md).
  const before = await waitFor('the target collected', async () => {
    const scraped = await scrape(served);
    if (!scraped.text.split('\n').includes(series[0] ?? '')) throw new Error('not yet');
    return scraped;
  });
  t.equal(before.status, 200);
  for (const line of series) t.ok(before.text.split('\n').includes(line), `before: ${line}`);

  // Stalled: the postmaster and every backend stopped, so the pool's sessions get no answer.
  const postmaster = Number((await readFile(join(state.dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
  const backends = (await run('pgrep', ['-P', String(postmaster)])).stdout.split('\n').filter((pid) => pid !== '').map(Number);
  const stopped = [postmaster, ...backends];
  const signal = (name: NodeJS.Signals) => { for (const pid of stopped) process.kill(pid, name); };
  signal('SIGSTOP');
  try {
    const stalled = await scrape(served);
    t.equal(stalled.status, 200, 'stalled: answered');
    for (const line of series) t.ok(stalled.text.split('\n').includes(line), `stalled: ${line}`);
  } finally {
    signal('SIGCONT');
  }

  await state.stop('fast');
  for (const round of [1, 2]) {
    const down = await scrape(served);
    t.equal(down.status, 200, `down, scrape ${round}: answered`);
    for (const line of series) t.ok(down.text.split('\n').includes(line), `down, scrape ${round}: ${line}`);
  }
  t.ok(served.alive(), 'still serving');
  await state.start();
  t.equal(await served.stop(), 0, served.output().slice(-2000));
});
