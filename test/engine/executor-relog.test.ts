import t from 'tap';
import { relog } from '../../src/engine/executor-thread.js';
import { bufferLogger } from '../fixtures/log.js';

/** The lines logged, without what differs from one process or moment to the next. */
function logged(lines: Record<string, unknown>[]): Record<string, unknown>[] {
  return lines.map(({ time: _time, pid: _pid, hostname: _hostname, ...rest }) => rest);
}

// As the thread's logger writes them (pino JSON, with its own time, pid and hostname).
const line = (fields: Record<string, unknown>) => JSON.stringify({ time: 1, pid: 2, hostname: 'thread', ...fields });

t.test("a run's line goes to the run's logger; a closed run's names the run; the thread's own goes to the engine's logger", async (t) => {
  const { log, lines } = bufferLogger();
  const runLog = log.child({ runId: 'run-open', remediation: 'files.cleanup' });
  const runs = (runId: string) => (runId === 'run-open' ? runLog : undefined);
  relog(line({ level: 30, runId: 'run-open', step: 'plan', msg: 'planned' }), log, runs);
  relog(line({ level: 40, runId: 'run-closed', msg: 'late timer' }), log, runs);
  relog(line({ level: 40, err: { type: 'Error', message: 'EPERM' }, msg: "cannot lower the executor thread's priority; it runs at the main thread's" }), log, runs);
  t.same(logged(lines()), [
    { level: 30, runId: 'run-open', remediation: 'files.cleanup', step: 'plan', msg: 'planned' },
    { level: 40, runId: 'run-closed', msg: 'late timer' },
    { level: 40, err: { type: 'Error', message: 'EPERM' }, msg: "cannot lower the executor thread's priority; it runs at the main thread's" },
  ]);
});

t.test('a line that is not a log line of the thread is refused, and nothing is logged', async (t) => {
  const { log, lines } = bufferLogger();
  t.throws(() => relog(line({ level: 35, runId: 'r', msg: 'odd level' }), log, () => undefined));
  t.throws(() => relog(line({ level: 30, runId: 7, msg: 'a number for an id' }), log, () => undefined));
  t.throws(() => relog('not json', log, () => undefined));
  t.same(lines(), []);
});
