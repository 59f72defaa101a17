import { readdir } from 'node:fs/promises';
import t from 'tap';
import { procStat } from '../fixtures/procs.js';
import { serveInstalled } from './installed.js';
import { dryRunConfig, oneDryRun } from './runs.js';

/** Each thread of a process and its nice value, from /proc/PID/task/TID/stat. */
async function niceValues(pid: number): Promise<Map<number, number>> {
  const nice = new Map<number, number>();
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    const stat = await procStat(`/proc/${pid}/task/${tid}/stat`).catch(() => null);
    // A thread may end between the listing and the read.
    if (stat === null) continue;
    nice.set(Number(tid), stat.nice);
  }
  return nice;
}

t.test('the installed serve acknowledges on its main thread; every other thread, the executor\'s too, runs 10 lower', { skip: process.platform === 'linux' ? false : 'nice values are per thread on Linux only' }, async (t) => {
  const { file } = await dryRunConfig(t);
  const served = await serveInstalled(t, file);
  const pid = served.child.pid ?? 0;
  const before = await niceValues(pid);
  const main = before.get(pid) ?? NaN;
  const lower = Math.min(19, main + 10);
  const others = (nice: Map<number, number>) => [...nice].filter(([tid]) => tid !== pid).map(([, value]) => value);
  t.ok(others(before).length >= 4, `V8's and libuv's threads are there: ${others(before).length}`);
  t.same(others(before).filter((value) => value !== lower), [], `before any run, every thread but the main one at ${lower}`);

  await oneDryRun(served.base, 'executor-priority-1');

  const after = await niceValues(pid);
  t.equal(after.get(pid), main, 'the main thread keeps its priority');
  t.equal(others(after).length, others(before).length + 1, 'one thread more: the executor');
  t.same(others(after).filter((value) => value !== lower), [], `the executor thread at ${lower} too`);
  t.same(served.logLines().filter((line) => line.level !== 30), [], 'nothing logged above info');
});
