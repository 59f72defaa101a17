import { hostname } from 'node:os';
import { Registry } from 'prom-client';
import t from 'tap';
import { z } from 'zod';
import { Engine } from '../../../src/engine/engine.js';
import type { Action, Risk } from '../../../src/actions/contract.js';
import { bufferLogger } from '../../fixtures/log.js';
import { startPostgres } from '../../fixtures/postgres.js';
import { postWebhook, startApp, tempDir, testConfig, VACUUM_RULE, webhookPayload } from '../../http/helpers.js';

/**
 * The engine's guards on the PostgreSQL state store, with two engines standing for two replicas
 * (each its own pool, state dir and queue): what one did, the other knows.
 */
const server = await startPostgres();
t.teardown(() => server.destroy());

/** An in-process action that counts its executions and touches no external system. */
function countingAction(behaviour: { risk?: Risk; fail?: boolean } = {}): Action<{ n: number }> & { executed: number } {
  const action = {
    executed: 0,
    name: 'test.action',
    description: 'test',
    params: z.strictObject({ n: z.coerce.number() }),
    risk: () => behaviour.risk ?? 'safe',
    resolve: async (params: { n: number }) => params,
    lock: () => ({ kind: 'local' as const, key: 'k' }),
    check: async () => ({ proceed: true, reason: 'go' }),
    plan: async (params: { n: number }) => ({ steps: [{ kind: 'exec' as const, detail: `work ${params.n}` }], payload: null }),
    run: async () => {
      action.executed += 1;
      if (behaviour.fail) throw new Error('it broke');
      return { detail: { done: true } };
    },
    verify: async () => ({ ok: true, detail: 'fine' }),
  };
  return action;
}

let schemas = 0;

const registries = new WeakMap<Engine, Registry>();

/** Two engines on one schema, each with its own state dir and registry, as two replicas would be. */
async function twoReplicas(t: Parameters<typeof tempDir>[0], action: Action<{ n: number }>, remediation: Record<string, unknown> = {}, now?: () => number): Promise<[Engine, Engine]> {
  schemas += 1;
  const postgres = { url: server.url(), schema: `engine_${schemas}` };
  const open = async () => {
    const registry = new Registry();
    const engine = await Engine.create({
      config: testConfig({ state: { dir: await tempDir(t), postgres }, remediation }), log: bufferLogger().log, actions: [action], registry, ...(now ? { now } : {}),
    });
    registries.set(engine, registry);
    return engine;
  };
  const engines = await Promise.all([open(), open()]);
  t.teardown(() => Promise.all(engines.map((engine) => engine.close())));
  return engines;
}

const alert = (fingerprint: string) => ({ fingerprint, startsAt: '2024-03-05T00:55:00Z', alertname: 'A', labels: { alertname: 'A' } });

t.test('an alert delivered to two replicas at once, and again later, runs once; both list every run, naming its replica', async (t) => {
  const action = countingAction();
  const [a, b] = await twoReplicas(t, action);
  const request = { remediation: 'test.action', params: { n: 1 }, trigger: 'alert' as const, alert: alert('f-shared') };
  const first = await Promise.all([a.submit(request).done, b.submit(request).done]);
  t.same(first.map((run) => run.status).sort(), ['duplicate', 'success']);
  const winner = first.find((run) => run.status === 'success');
  t.equal(first.find((run) => run.status === 'duplicate')?.duplicateOf, winner?.id, 'the duplicate names the run that has it');
  const again = await Promise.all([b.submit(request).done, a.submit(request).done]);
  t.same(again.map((run) => run.status), ['duplicate', 'duplicate'], 're-deliveries after the run are duplicates on both');
  t.equal(action.executed, 1, 'the action ran once');
  const listedA = (await a.list({}, null, 10)).runs;
  const listedB = (await b.list({}, null, 10)).runs;
  t.same(listedA, listedB, 'both replicas list the same runs');
  t.same(listedA.map((run) => run.id).sort(), [...first, ...again].map((run) => run.id).sort());
  t.ok(listedA.every((run) => run.host === hostname() && run.pid === process.pid), 'each record names its replica');
  t.same(await b.get(winner?.id ?? ''), winner, 'GET /runs/:id on the other replica');
});

t.test('a cooldown started on one replica holds on the other', async (t) => {
  const action = countingAction();
  const [a, b] = await twoReplicas(t, action, { cooldownSeconds: 600 });
  t.equal((await a.submit({ remediation: 'test.action', params: { n: 1 }, trigger: 'schedule' }).done).status, 'success');
  const second = await b.submit({ remediation: 'test.action', params: { n: 1 }, trigger: 'schedule' }).done;
  t.match(second, { status: 'skipped', skipCode: 'cooldown', reason: /^cooldown: test.action local:local:k ran less than 600s ago; \d+s left$/ });
  t.equal(action.executed, 1);
});

t.test('failures on one replica open the circuit on the other', async (t) => {
  const action = countingAction({ fail: true });
  const [a, b] = await twoReplicas(t, action, { circuitBreaker: { failures: 2, windowSeconds: 3600 } });
  for (const engine of [a, b]) t.equal((await engine.submit({ remediation: 'test.action', params: { n: 1 }, trigger: 'manual' }).done).status, 'failure');
  const refused = await a.submit({ remediation: 'test.action', params: { n: 1 }, trigger: 'alert', alert: alert('f-circuit') }).done;
  t.match(refused, { status: 'skipped', skipCode: 'circuit' });
  t.match(await registries.get(b)?.getSingleMetricAsString('upkeep_remediation_circuit_open'), /upkeep_remediation_circuit_open\{remediation="test.action"\} 1/, 'and its metric says so');
  t.equal(action.executed, 2);
});

t.test('an alert refused outside the window on one replica runs when re-delivered to the other inside it', async (t) => {
  let clock = Date.parse('2024-03-05T01:00:00Z');
  const action = countingAction({ risk: 'disruptive' });
  const [a, b] = await twoReplicas(t, action, { windows: [{ name: 'nightly', cron: '0 2 * * *', durationMinutes: 60, timezone: 'UTC' }] }, () => clock);
  const request = { remediation: 'test.action', params: { n: 1 }, trigger: 'alert' as const, alert: alert('f-window'), allowRisk: 'disruptive' as const };
  t.equal((await a.submit(request).done).skipCode, 'window');
  clock = Date.parse('2024-03-05T02:30:00Z');
  t.equal((await b.submit(request).done).status, 'success', 'the refusal gave the claim back, fleet-wide');
  t.equal((await a.submit(request).done).status, 'duplicate');
});

t.test('while the state database is down, an alert is not acknowledged (503, naming what failed) and runs nothing; once it is back, the re-sent alert is claimed and journalled', async (t) => {
  schemas += 1;
  const captured = bufferLogger();
  const config = testConfig({ state: { dir: await tempDir(t), postgres: { url: server.url(), schema: `engine_${schemas}`, timeoutSeconds: 2 } }, remediation: { rules: [VACUUM_RULE] } });
  const app = await startApp(t, config, captured.log);
  const payload = await webhookPayload({ labels: { target: 'nowhere' } });
  await server.stop();
  let restarted = false;
  t.teardown(async () => { if (!restarted) await server.start(); });
  const down = await postWebhook(app, payload);
  t.same([down.statusCode, down.raw, down.headers['retry-after']], [503, '{"error":"the state store failed while claiming an alert; upkeep logged why; retry later"}', '10']);
  const runsDown = await app.fastify.inject({ method: 'GET', url: '/runs' });
  t.same([runsDown.statusCode, runsDown.json()], [503, { error: 'the state store failed while listing runs; upkeep logged why; retry later' }], 'GET /runs too');
  t.match(captured.text(), /state\.postgres: claiming an alert: (connect ECONNREFUSED|Connection terminated)/);
  await server.start();
  restarted = true;
  const back = await postWebhook(app, payload);
  t.equal(back.statusCode, 202);
  const runId = back.body?.ignored[0]?.runId;
  t.match(back.body?.ignored, [{ runId: String, reason: /nowhere/ }], 'claimed and journalled now (rejected: the rule names an unknown target)');
  t.same((await app.engine.list({}, null, 10)).runs.map((run) => [run.id, run.status]), [[runId, 'rejected']], 'one run journalled, from the acknowledged delivery');
});

t.test('a success the action records (Action.successRecord) is read by the other replica, with the run\'s finish time; a failure records nothing', async (t) => {
  const recording = (fail: boolean): Action<{ n: number }> => ({
    ...countingAction({ fail }),
    successRecord: (params: { n: number }, output: Readonly<Record<string, unknown>>) => ({ subject: `object-${params.n}`, detail: JSON.stringify(output) }),
  });
  const [a, b] = await twoReplicas(t, recording(false));
  // Read on the replica that runs it: the other's first read comes after (a read is cached for 30 s).
  t.same([...(await a.successes('test.action')).entries()], [], 'nothing yet');
  const run = await a.submit({ remediation: 'test.action', params: { n: 7 }, trigger: 'manual' }).done;
  t.equal(run.status, 'success');
  const expected = { remediation: 'test.action', subject: 'object-7', atMs: Date.parse(run.finishedAt ?? ''), detail: '{"done":true}' };
  t.same([...(await b.successes('test.action')).entries()], [['object-7', expected]], 'the other replica reads it');
  t.same([...(await a.successes('test.action')).entries()], [['object-7', expected]], 'and the one that ran it');
  const [failing] = await twoReplicas(t, recording(true));
  t.equal((await failing.submit({ remediation: 'test.action', params: { n: 8 }, trigger: 'manual' }).done).status, 'failure');
  t.same([...(await failing.successes('test.action')).entries()], [], 'a failed run records nothing');
});

t.test('a success the state database refuses to record is logged; the run stays a success', async (t) => {
  schemas += 1;
  const schema = `engine_${schemas}`;
  const captured = bufferLogger();
  const action = { ...countingAction(), successRecord: () => ({ subject: 'object', detail: 'file' }) };
  const engine = await Engine.create({ config: testConfig({ state: { dir: await tempDir(t), postgres: { url: server.url(), schema } } }), log: captured.log, actions: [action] });
  t.teardown(() => engine.close());
  await server.query(`drop table ${schema}.success_records`);
  const run = await engine.submit({ remediation: 'test.action', params: { n: 1 }, trigger: 'manual' }).done;
  t.equal(run.status, 'success');
  t.match(captured.lines().filter((line) => line.level === 50), [{
    runId: run.id, remediation: 'test.action', err: { message: `state.postgres: recording a success: relation "${schema}.success_records" does not exist` },
    msg: 'cannot record the success in the state database; replicas that did not run it do not report it',
  }]);
});

t.test('with the file store the engine keeps no shared success: backup.verify\'s ledger in state.dir says it', async (t) => {
  const action = { ...countingAction(), successRecord: () => ({ subject: 'object', detail: 'file' }) };
  const engine = await Engine.create({ config: testConfig({ state: { dir: await tempDir(t) } }), log: bufferLogger().log, actions: [action] });
  t.teardown(() => engine.close());
  t.equal((await engine.submit({ remediation: 'test.action', params: { n: 1 }, trigger: 'manual' }).done).status, 'success');
  t.same([...(await engine.successes('test.action')).entries()], []);
});
