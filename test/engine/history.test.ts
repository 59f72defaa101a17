import t from 'tap';
import { consumesAlert, idempotencyKey } from '../../src/engine/guards/idempotency.js';
import { riskGate } from '../../src/engine/guards/risk-window.js';
import { RunHistory } from '../../src/engine/history.js';
import type { RunRecord } from '../../src/engine/journal.js';
import { CLAIM_LIMIT, CLAIM_TTL_MS, GuardFile } from '../../src/engine/state/guard-file.js';
import { tempDir, testConfig } from '../http/helpers.js';

const record = (changes: Partial<RunRecord>): RunRecord => ({
  id: 'r', remediation: 'postgres.vacuum', trigger: 'alert', status: 'success', params: {}, queuedAt: '2024-01-01T00:00:00Z', ...changes,
});

t.test('guards: idempotency, cooldown, circuit breaker, risk gate', async (t) => {
  const alert = { fingerprint: 'f', startsAt: 's', alertname: 'A', labels: {} };
  t.equal(consumesAlert(record({ alert })), true);
  t.equal(consumesAlert(record({ alert, status: 'duplicate' })), false);
  t.equal(consumesAlert(record({ alert, status: 'skipped', skipCode: 'window' })), false, 'a window refusal can run on re-delivery');
  t.equal(consumesAlert(record({ alert, status: 'skipped', skipCode: 'lock' })), true, 'another replica handled it');
  t.equal(consumesAlert(record({})), false);
  t.equal(consumesAlert(record({ alert, status: 'failure' })), false, 'a failure may run again on re-delivery');
  t.equal(consumesAlert(record({ alert, status: 'interrupted' })), false, 'so may an interrupted run');
  t.equal(consumesAlert(record({ alert, status: 'dry_run' })), true);
  t.equal(consumesAlert(record({ alert, status: 'skipped', skipCode: 'condition' })), true, 'decided the work was not needed');
  const handled = { ...alert, fingerprint: 'g' };

  const settings = testConfig({ remediation: { cooldownSeconds: 60, circuitBreaker: { failures: 2, windowSeconds: 100 } } }).remediation;
  const t0 = Date.parse('2024-01-01T00:00:00Z');
  const guards = await GuardFile.open({ dir: await tempDir(t), now: () => t0, claimTtlMs: CLAIM_TTL_MS, claimLimit: CLAIM_LIMIT, cooldownMs: 60_000, failureWindowMs: 100_000 });
  t.teardown(() => guards.close());
  const history = new RunHistory(settings, guards);
  await history.replay([
    record({ id: 'a', alert, status: 'failure', lockKey: 'k', finishedAt: '2024-01-01T00:00:10Z' }),
    record({ id: 'b', status: 'failure', finishedAt: '2024-01-01T00:00:20Z' }),
    record({ id: 'c', status: 'running' }),
    record({ id: 'd', status: 'success', dryRun: true, lockKey: 'dry', finishedAt: '2024-01-01T00:00:30Z', remediation: 'other' }),
    record({ id: 'e', status: 'failure', finishedAt: 'garbage' }),
    record({ id: 'f', alert: handled, status: 'success', finishedAt: '2024-01-01T00:00:40Z', remediation: 'other' }),
  ]);
  t.equal(await history.claimAlert(idempotencyKey(handled, 'other'), 'new', t0), 'f', 'replayed successes keep their alerts claimed');
  t.equal(await history.claimAlert(idempotencyKey(alert, 'postgres.vacuum'), 'retry', t0), undefined, 'a replayed failure gave its alert back');
  t.equal(await history.claimAlert(idempotencyKey(alert, 'postgres.analyze'), 'new', t0), undefined, 'per remediation');
  await history.releaseAlert(idempotencyKey(alert, 'postgres.analyze'), 'someone-else');
  t.equal(await history.claimAlert(idempotencyKey(alert, 'postgres.analyze'), 'x', t0), 'new', 'only the owner releases');
  t.equal(await history.cooldownRemaining('k', t0 + 30_000), 40);
  t.equal(await history.cooldownRemaining('k', t0 + 80_000), 0);
  t.equal(await history.cooldownRemaining('dry', t0 + 31_000), 0, 'dry runs do not start a cooldown');
  // Executed while the clock was a year ahead, then the clock was set right.
  const year = 365 * 86_400_000;
  await history.recordFinish(record({ status: 'success', lockKey: 'ahead', remediation: 'other', finishedAt: new Date(t0 + year).toISOString() }));
  t.equal(await history.cooldownRemaining('ahead', t0 + 1000), 60, 'an execution recorded in the future counts from when it is first seen');
  t.equal(await history.cooldownRemaining('ahead', t0 + 31_000), 30, 'and holds for the cooldown from then');
  t.equal(await history.cooldownRemaining('ahead', t0 + 61_000), 0, 'not until real time reaches the recorded time');
  t.equal(await history.circuitOpen('postgres.vacuum', t0 + 50_000), true);
  t.equal(await history.circuitOpen('postgres.vacuum', t0 + 115_000), false, 'failures age out of the window');
  await history.recordFinish(record({ status: 'failure', finishedAt: '2024-01-01T00:02:00Z' }));
  await history.recordFinish(record({ status: 'failure', finishedAt: '2024-01-01T00:02:01Z' }));
  t.equal(await history.circuitOpen('postgres.vacuum', t0 + 125_000), true);
  await history.recordFinish(record({ status: 'success', finishedAt: '2024-01-01T00:02:02Z' }));
  t.equal(await history.circuitOpen('postgres.vacuum', t0 + 125_000), false, 'a success closes the circuit');
  for (const second of [3, 4, 5, 6]) await history.recordFinish(record({ status: 'rejected', lockKey: 'k2', finishedAt: `2024-01-01T00:02:0${second}Z` }));
  t.equal(await history.circuitOpen('postgres.vacuum', t0 + 127_000), false, 'rejections are not failures: they never open the circuit');
  t.equal(await history.cooldownRemaining('k2', t0 + 127_000), 0, 'nor start a cooldown: nothing executed');
  t.equal(consumesAlert(record({ alert, status: 'rejected' })), true, 'a rejected alert is handled: its re-deliveries are duplicates');

  const window = { name: 'w', cron: '* * * * *', durationMinutes: 1 };
  t.equal(riskGate('safe', undefined, null), null);
  t.match(riskGate('destructive', 'disruptive', window), { code: 'risk' });
  t.match(riskGate('disruptive', 'destructive', null), { code: 'window' });
  t.equal(riskGate('disruptive', 'disruptive', window), null);
});
