import t from 'tap';
import type { RunRecord } from '../../src/engine/journal.js';
import { CircuitReadings, outcomeOf } from '../../src/engine/metrics.js';

t.test('outcomes counted in upkeep_remediation_runs_total', async (t) => {
  t.same(['success', 'dry_run', 'failure', 'interrupted', 'skipped', 'duplicate', 'cancelled', 'rejected', 'queued', 'running'].map((status) => outcomeOf(status as RunRecord['status'])),
    ['success', 'dry_run', 'failure', 'failure', 'skipped', 'skipped', 'skipped', 'rejected', null, null]);
});

t.test('the circuit breakers\' state for a scrape: a read that fails or stalls leaves the last values, and one in flight is not started again', async (t) => {
  let calls = 0;
  let answer: (remediation: string) => Promise<boolean> = async (remediation) => remediation === 'b';
  const readings = new CircuitReadings(['a', 'b'], (remediation) => { calls += 1; return answer(remediation); }, 50);
  t.same([...await readings.read()], [['a', false], ['b', true]]);
  answer = async () => { throw new Error('state.postgres: counting failures: connect ECONNREFUSED'); };
  t.same([...await readings.read()], [['a', false], ['b', true]], 'the database refused: the last values');
  const stalled: (() => void)[] = [];
  answer = (remediation) => new Promise((resolve) => { stalled.push(() => resolve(remediation === 'a')); });
  calls = 0;
  t.same([...await readings.read()], [['a', false], ['b', true]], 'stalled past the wait: the last values');
  t.same([...await readings.read()], [['a', false], ['b', true]]);
  t.equal(calls, 2, 'the stalled read was not started again by the next scrape');
  for (const release of stalled) release();
  await new Promise((resolve) => setImmediate(resolve));
  t.same([...await readings.read()], [['a', true], ['b', false]], 'once it answers, the new values');
});
