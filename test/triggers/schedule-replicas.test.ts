import pg from 'pg';
import { Registry } from 'prom-client';
import t from 'tap';
import { z } from 'zod';
import type { Action } from '../../src/actions/contract.js';
import { Engine } from '../../src/engine/engine.js';
import { startSchedule } from '../../src/triggers/schedule.js';
import { bufferLogger } from '../fixtures/log.js';
import { waitFor } from '../fixtures/ports.js';
import { startPostgres } from '../fixtures/postgres.js';
import { tempDir, testConfig } from '../http/helpers.js';

/**
 * Two replicas (two engines, each with its own schedule, state dir and pool) sharing one PostgreSQL
 * state store both fire every tick of an every-second job; each tick runs once.
 */
const server = await startPostgres();
t.teardown(() => server.destroy());

/** An in-process action with a per-process lock, so only the tick claim stands between two replicas' runs. */
const action: Action<Record<string, never>> = {
  name: 'test.tick',
  description: 'test',
  params: z.strictObject({}),
  risk: () => 'safe',
  resolve: async (params) => params,
  lock: () => ({ kind: 'local', key: 'k' }),
  check: async () => ({ proceed: true, reason: 'go' }),
  plan: async () => ({ steps: [{ kind: 'exec', detail: 'tick' }], payload: null }),
  run: async () => ({ detail: {} }),
  verify: async () => ({ ok: true, detail: 'fine' }),
};

t.test('an every-second job on two replicas sharing the PostgreSQL store runs once per nominal tick', async (t) => {
  const schema = 'schedule_replicas';
  const config = async () => testConfig({
    state: { dir: await tempDir(t), postgres: { url: server.url(), schema } },
    schedule: [{ name: 'every-second', cron: '* * * * * *', remediation: 'test.tick', params: {} }],
  });
  const replicas = await Promise.all([0, 1].map(async () => {
    const captured = bufferLogger('debug');
    const engine = await Engine.create({ config: await config(), log: captured.log, actions: [action] });
    const schedule = startSchedule({ config: await config(), submitter: engine, registry: new Registry(), log: captured.log });
    return { captured, engine, schedule };
  }));
  t.teardown(() => Promise.all(replicas.map(async ({ engine, schedule }) => { await schedule.stop(); await engine.close(); })));
  const [a] = replicas;
  if (!a) throw new Error('no replica');
  const scheduled = async () => (await a.engine.list({ trigger: 'schedule' }, null, 1000)).runs;
  await waitFor('four scheduled runs', async () => { if ((await scheduled()).length < 4) throw new Error('not yet'); }, 60_000, 100);
  for (const { schedule } of replicas) await schedule.stop();
  const runs = await waitFor('every scheduled run to finish', async () => {
    const all = await scheduled();
    if (all.some((run) => run.finishedAt === undefined)) throw new Error('still running');
    return all;
  }, 30_000, 100);

  const client = new pg.Client({ connectionString: server.url() });
  await client.connect();
  t.teardown(() => client.end());
  const claims = z.array(z.object({ nominal_ms: z.string(), run_id: z.string() }))
    .parse((await client.query(`select nominal_ms::text, run_id from ${schema}.tick_claims where job = 'every-second' order by nominal_ms`)).rows);
  t.same(runs.map((run) => run.id).sort(), claims.map((claim) => claim.run_id).sort(), 'one run per claimed tick, and every run had its tick');
  t.ok(runs.every((run) => run.status === 'success' && run.source === 'schedule:every-second'));

  // Both replicas fired the ticks; a tick one of them lost to the other is skipped, naming the winner.
  // (Not necessarily every tick: on a busy machine a replica may miss one, which the schedule logs.)
  const lines = replicas.flatMap(({ captured }) => captured.lines());
  t.equal(lines.filter((line) => line.msg === 'scheduled run submitted').length, runs.length);
  const skipped = lines.filter((line) => line.msg === 'tick already claimed by another run; skipped');
  t.ok(skipped.length > 0, 'the replicas fired the same ticks');
  const claimed = new Map(claims.map((claim) => [claim.run_id, new Date(Number(claim.nominal_ms)).toISOString()]));
  for (const line of skipped) t.same([line.level, claimed.get(String(line.runId))], [20, line.nominal], `the skipped tick ${String(line.nominal)} names the run that has it, at debug`);
});
