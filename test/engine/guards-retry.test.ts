import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { z } from 'zod';
import type { Action } from '../../src/actions/contract.js';
import { Engine } from '../../src/engine/engine.js';
import { startTestPostgres } from '../actions/postgres-fixture.js';
import { waitFor } from '../fixtures/ports.js';
import { capturedLogger, testConfig } from '../http/helpers.js';

// A replica found a run's outcome lost for good when state.postgres went away as the run ended:
// the guards' memory refused it, finish() only logged that, and the next episode of the alert ran
// again inside the cooldown (the table vacuumed twice in 600 s).
t.test('an outcome the guards\' memory refused (state.postgres away as the run ended) is recorded once it is back: the cooldown holds', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database upkeep');
  const dir = await mkdtemp(join(tmpdir(), 'upkeep-guards-retry-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  let stopStateStore = true;
  const action: Action<Record<string, never>> = {
    name: 'test.outage', description: 'ends while the state store is away', params: z.strictObject({}), risk: () => 'safe',
    resolve: async (params) => params, lock: () => ({ kind: 'local', key: 'object' }),
    check: async () => ({ proceed: true, reason: 'go' }),
    plan: async () => ({ steps: [{ kind: 'exec', detail: 'nothing' }], payload: {} }),
    run: async () => {
      if (stopStateStore) await server.stop('fast');
      return { detail: {} };
    },
    verify: async () => ({ ok: true, detail: 'fine' }),
  };
  const config = testConfig({ state: { dir, postgres: { url: server.url('upkeep') } }, remediation: { cooldownSeconds: 600 } });
  const captured = capturedLogger('info');
  const engine = await Engine.create({ config, log: captured.log, actions: [action], journalRetryMs: 50 });
  t.teardown(() => engine.close());

  const first = engine.submit({ remediation: 'test.outage', params: {}, trigger: 'schedule', source: 'outage' });
  t.equal(await first.journalled, 'queued');
  t.equal((await first.done).status, 'success');
  t.match(captured.text(), new RegExp(`"level":50.*"runId":"${first.runId}".*"msg":"cannot record the run in the guards' memory; trying again every 5 s"`));
  await server.start();
  await waitFor('the outcome recorded', async () => {
    if (!captured.text().includes('"msg":"the guards\' memory took outcomes it had refused"')) throw new Error('not yet');
  });
  t.match(captured.text(), /"level":30.*"runs":1,"waiting":0,"msg":"the guards' memory took outcomes it had refused"/);

  stopStateStore = false;
  const second = engine.submit({ remediation: 'test.outage', params: {}, trigger: 'schedule', source: 'outage' });
  const record = await second.done;
  t.equal(record.status, 'skipped', 'the next automatic run is inside the cooldown');
  t.equal(record.skipCode, 'cooldown');
});
