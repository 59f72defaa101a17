import t from 'tap';
import { vacuum } from '../../src/actions/postgres.js';
import { runContext, type RunSpec } from '../../src/engine/executor.js';
import { RunAbort } from '../../src/engine/run-abort.js';
import { Connections } from '../../src/systems/connections.js';
import { testConfig } from '../actions/context.js';
import { collector, promotedByTwoScavenges, type Collect } from '../fixtures/gc.js';
import { bufferLogger } from '../fixtures/log.js';

// Few enough that no scavenge runs while they are opened: one would keep what was open then for
// the old generation too (the live runs are what they hold, not what this test measures).
const RUNS = 300;

/** What reaches the old generation from RUNS contexts that were opened and closed before two scavenges. */
async function promotedBy(collect: Collect, open: () => () => Promise<void>): Promise<number> {
  collect();
  const closing: Promise<void>[] = [];
  for (let i = 0; i < RUNS; i += 1) closing.push(open()());
  await Promise.all(closing);
  await new Promise((resolve) => setImmediate(resolve));
  return promotedByTwoScavenges(collect);
}

t.test('a run\'s context that has closed dies young: it holds no AbortSignal', async (t) => {
  const collect = collector();
  const config = testConfig({ targets: { postgres: [{ name: 'main', url: 'postgres://u@127.0.0.1:1/postgres' }] } });
  const shared = new Connections(config);
  t.teardown(() => shared.close());
  const { log } = bufferLogger();
  const spec = (abort: RunAbort): RunSpec => ({ runId: 'r1', action: vacuum, dryRun: true, deadline: Date.now() + 60_000, trigger: 'alert', log, abort, progress: () => undefined });
  const context = () => {
    const { close } = runContext(config, shared, spec(new RunAbort()), Date.now);
    return () => close(false);
  };
  // What measuring itself leaves (the closes' promises, the test runner's own hooks on them).
  const nothing = await promotedBy(collect, () => () => Promise.resolve());
  const contexts = await promotedBy(collect, context);
  // What the context was before: a literal with the signal in it, listened to until closed.
  const literals = await promotedBy(collect, () => {
    const { signal } = new AbortController();
    const onAbort = () => undefined;
    signal.addEventListener('abort', onAbort, { once: true });
    const context = { config, log, get signal() { return signal; }, memo: new Map() };
    return async () => { signal.removeEventListener('abort', onAbort); context.memo.clear(); };
  });
  t.ok(literals > RUNS * 150, `as literals with their signals: ${literals} bytes promoted`);
  t.ok(contexts < nothing + RUNS * 100, `as RunContexts: ${contexts} bytes promoted (${nothing} with no run at all)`);
});
