import t from 'tap';
import { drainRate, type RunTimes } from '../../bench/drain.js';

/** Runs queued at `arrivals` (ms), `slots` at a time, `serviceMs` each, first come first served. */
function simulate(arrivals: readonly number[], slots: number, serviceMs: number): RunTimes[] {
  const free = Array.from({ length: slots }, () => 0);
  const runs: RunTimes[] = [];
  for (const queued of arrivals) {
    const slot = free.indexOf(Math.min(...free));
    const started = Math.max(queued, free[slot] ?? 0);
    free[slot] = started + serviceMs;
    runs.push({ queued, started, finished: started + serviceMs });
  }
  return runs;
}

/** One arrival every 1000/`rate` ms for `seconds`. */
const steady = (rate: number, seconds: number) => Array.from({ length: rate * seconds }, (_, n) => n * (1000 / rate));

t.test('a queue slower than the load: the rate is what the slots get through, not the arrival rate', async (t) => {
  // 16 slots of 20 ms: 800 runs/s, fed 1,000/s for 5 s.
  const drain = drainRate(simulate(steady(1000, 5), 16, 20));
  t.ok(drain.rate !== null && Math.abs(drain.rate - 800) < 8, `800 runs/s within 1% (${drain.rate})`);
  t.ok(drain.backlogSeconds > 3, `the backlog lasted most of the load and its drain (${drain.backlogSeconds} s)`);
  t.ok(drain.running > 15.9, `every slot was taken meanwhile (${drain.running})`);
});

t.test('a queue faster than the load: no backlog, nothing measured', async (t) => {
  // 16 slots of 10 ms: 1,600 runs/s, fed 1,000/s; no run waits.
  t.same(drainRate(simulate(steady(1000, 5), 16, 10)), { rate: null, backlogSeconds: 0, finishedInBacklog: 0, running: 0 });
});

t.test('a queue faster than the load, after a burst: its own rate, above the arrival rate', async (t) => {
  // 1,000/s for 5 s and 1,000 more at 2 s; 16 slots of 10 ms: 1,600 runs/s. Finished runs over
  // the whole time from the first arrival to the last finish would say 6,000 / 5 s, 1,200.
  const drain = drainRate(simulate([...steady(1000, 5), ...Array.from({ length: 1000 }, () => 2000)].sort((a, b) => a - b), 16, 10));
  t.ok(drain.rate !== null && Math.abs(drain.rate - 1600) < 16, `1,600 runs/s within 1% (${drain.rate})`);
});

t.test('waits merge into stretches; finishes count inside them only', async (t) => {
  const runs: RunTimes[] = [
    // Waited 0..1,500 and 1,000..2,600 (from 100 ms in): one stretch, 100..2,600.
    { queued: 0, started: 1500, finished: 1600 },
    { queued: 1000, started: 2600, finished: 2700 },
    // A short wait (50 ms) is no backlog.
    { queued: 3000, started: 3050, finished: 3060 },
    // Finished inside the stretch, at its start, and just past its end.
    { queued: 0, started: 0, finished: 100 },
    { queued: 0, started: 0, finished: 2000 },
    { queued: 0, started: 0, finished: 2600 },
  ];
  // In [100, 2,600): 100, 1,600, 2,000. Not 2,600, 2,700, 3,060.
  // Running inside it: 1,500..1,600, 100..2,000 and 100..2,600, 4,500 ms in 2,500: 1.8 runs on average.
  t.same(drainRate(runs), { rate: 3 / 2.5, backlogSeconds: 2.5, finishedInBacklog: 3, running: 4500 / 2500 });
  t.equal(drainRate(runs, 2000).rate, null, 'under a second of waits longer than 2 s: not measured');
});
