import t from 'tap';
import { Engine } from '../../src/remediation/engine.js';
import { capturedLogger, journalLines, tempDir, testConfig } from '../http/helpers.js';
import { gatedAction } from './gated-action.js';

t.test('remediation.maxQueued: a full queue refuses a run, records nothing, and does not claim its alert', async (t) => {
  const stateDir = await tempDir(t);
  const { action, open } = gatedAction();
  const captured = capturedLogger('info');
  const config = testConfig({ state: { dir: stateDir }, remediation: { concurrency: 1, maxQueued: 2 } });
  const engine = await Engine.create({ config, log: captured.log, actions: [action] });
  t.teardown(() => engine.close());
  const alert = (fingerprint: string) => ({ fingerprint, startsAt: '2026-01-01T00:00:00Z', alertname: 'A', labels: { alertname: 'A' } });

  t.equal(engine.queueRoom(), 2);
  const first = engine.submit({ remediation: 'test.gated', params: { n: 1 }, trigger: 'manual' });
  const second = engine.submit({ remediation: 'test.gated', params: { n: 2 }, trigger: 'alert', alert: alert('fp-2') });
  t.equal(engine.queueRoom(), 0, 'both wait until their journal lines are durable');
  t.throws(() => engine.submit({ remediation: 'test.gated', params: { n: 3 }, trigger: 'alert', alert: alert('fp-3') }),
    { name: 'QueueFull', limit: 2, message: 'the run queue is full: at most 2 runs may wait (remediation.maxQueued); retry later' }, 'the third is refused');
  t.throws(() => engine.submit({ remediation: 'test.gated', params: { n: 4 }, trigger: 'manual' }), { name: 'QueueFull' });

  await Promise.all([first.journalled, second.journalled]);
  open();
  t.equal((await first.done).status, 'success');
  t.equal((await second.done).status, 'success');
  t.equal(engine.queueRoom(), 2, 'the queue drained');
  const again = await engine.submit({ remediation: 'test.gated', params: { n: 3 }, trigger: 'alert', alert: alert('fp-3') }).done;
  t.equal(again.status, 'success', 'the refused alert runs when sent again: it was never taken for a duplicate');

  const runs = new Set((await journalLines(stateDir)).map((record) => record.id));
  t.equal(runs.size, 3, 'the journal holds the three runs that were accepted and nothing of the refused ones');
  t.same(captured.text().split('\n').filter((line) => line.includes('"run finished"')).map((line) => (JSON.parse(line) as { status: string }).status), ['success', 'success', 'success']);
});
