import { Registry } from 'prom-client';
import t from 'tap';
import { z } from 'zod';
import type { Action } from '../../src/actions/contract.js';
import { InlineExecutor } from '../../src/engine/executor.js';
import { RunFinisher } from '../../src/engine/finish.js';
import { RunHistory } from '../../src/engine/history.js';
import { RunLiveness } from '../../src/engine/leases.js';
import { Locks } from '../../src/engine/locks.js';
import { RemediationMetrics } from '../../src/engine/metrics.js';
import { RunPipeline } from '../../src/engine/pipeline.js';
import type { Job } from '../../src/engine/queue.js';
import { RunAbort } from '../../src/engine/run-abort.js';
import { AlertSilences } from '../../src/engine/silences.js';
import { openStateStore } from '../../src/engine/state/open.js';
import { newRunId } from '../../src/engine/state/run-id.js';
import { Connections } from '../../src/systems/connections.js';
import { bufferLogger } from '../fixtures/log.js';
import { tempDir, testConfig } from '../http/helpers.js';

// A run's lock is what keeps a second run of the same target from starting; the guards' memory
// is what keeps one from starting within the cooldown, or past an open circuit. The run records
// what it executed before its lock goes, so the next run to take the lock sees both.

t.test('what a run executed is in the guards\' memory before its lock is let go, whether it succeeded or failed', async (t) => {
  const config = testConfig({ state: { dir: await tempDir(t) }, remediation: { cooldownSeconds: 600, circuitBreaker: { failures: 1, windowSeconds: 600 } } });
  const captured = bufferLogger();
  const store = await openStateStore(config, captured.log, Date.now);
  t.teardown(() => store.close());
  const connections = new Connections(config);
  t.teardown(() => connections.close());
  const history = new RunHistory(config.remediation, store.guards);
  const metrics = new RemediationMetrics(new Registry(), ['test.ok', 'test.failing'], async () => false);
  const locks = new Locks(connections, { redisTtlMs: 30_000, liveness: new RunLiveness(store), log: captured.log });
  // What the memory said at the moment each lock was let go.
  const atRelease: { cooldownSeconds: number; circuitOpen: boolean }[] = [];
  const acquire = locks.acquire.bind(locks);
  locks.acquire = async (spec, runId, lockKey) => {
    const lock = await acquire(spec, runId, lockKey);
    if (!lock || lockKey === undefined) return lock;
    return {
      description: lock.description,
      release: async () => {
        atRelease.push({ cooldownSeconds: await history.cooldownRemaining(lockKey, Date.now()), circuitOpen: await history.circuitOpen('test.failing', Date.now()) });
        await lock.release();
      },
    };
  };
  const pipeline = new RunPipeline({
    config, log: captured.log, executor: new InlineExecutor(config, connections, Date.now), locks, history, silences: new AlertSilences(undefined),
    metrics, store, finisher: new RunFinisher(history, metrics, store, captured.log, Date.now), now: Date.now,
  });
  const action = (name: string, fail: boolean): Action<{ n: number }> => ({
    name, description: 'test', params: z.strictObject({ n: z.number() }), risk: () => 'safe', resolve: async (params) => params,
    lock: (params) => ({ kind: 'local', key: `${name}-${params.n}` }),
    check: async () => ({ proceed: true, reason: 'go' }),
    plan: async () => ({ steps: [{ kind: 'exec', detail: 'work' }], payload: null }),
    run: async () => { if (fail) throw new Error('the work failed'); return { detail: {} }; },
    verify: async () => ({ ok: true, detail: 'fine' }),
  });
  const run = async (executed: Action<{ n: number }>) => {
    const nowMs = Date.now();
    const job: Job = {
      record: { id: newRunId(nowMs), remediation: executed.name, trigger: 'schedule', status: 'queued', params: { n: 1 }, queuedAt: new Date(nowMs).toISOString() },
      request: { remediation: executed.name, params: { n: 1 }, trigger: 'schedule' }, action: executed as Action<unknown>, params: { n: 1 }, settle: () => undefined,
    };
    return pipeline.execute(job, new RunAbort());
  };

  t.equal((await run(action('test.ok', false))).status, 'success');
  t.equal((await run(action('test.failing', true))).status, 'failure');
  t.equal(atRelease.length, 2);
  t.ok((atRelease[0]?.cooldownSeconds ?? 0) > 590, 'the success\'s cooldown was known when its lock went');
  t.ok((atRelease[1]?.cooldownSeconds ?? 0) > 590, 'and the failure\'s');
  t.equal(atRelease[1]?.circuitOpen, true, 'the failure had opened the circuit before its lock went');
  t.equal((await run(action('test.ok', false))).skipCode, 'cooldown', 'the next automatic run is refused by the cooldown');
  t.equal(captured.text().includes('cannot record'), false, 'recorded once, without error');
});
