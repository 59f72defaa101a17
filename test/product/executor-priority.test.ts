import { readdir, readFile } from 'node:fs/promises';
import t from 'tap';
import { serveInstalled } from './installed.js';
import { dryRunConfig, oneDryRun } from './runs.js';

/** Each thread of a process and its nice value, from /proc/PID/task/TID/stat (field 19; the name in parentheses may hold spaces). */
async function niceValues(pid: number): Promise<Map<number, number>> {
  const nice = new Map<number, number>();
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => null);
    // A thread may end between the listing and the read.
    if (stat === null) continue;
    nice.set(Number(tid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
  }
  return nice;
}

t.test('the installed serve runs its remediations on a thread 10 lower in priority than the one that acknowledges webhooks', { skip: process.platform === 'linux' ? false : 'nice values are per thread on Linux only' }, async (t) => {
  const { file } = await dryRunConfig(t);
  const served = await serveInstalled(t, file);
  const pid = served.child.pid ?? 0;
  const before = await niceValues(pid);
  const main = before.get(pid) ?? NaN;
  t.same([...before.values()].filter((value) => value !== main), [], `before any run, every thread at the main thread's nice value (${main})`);

  await oneDryRun(served.base, 'executor-priority-1');

  const after = await niceValues(pid);
  const lowered = [...after].filter(([, value]) => value !== main);
  t.equal(after.get(pid), main, 'the main thread keeps its priority');
  t.same(lowered.map(([, value]) => value), [Math.min(19, main + 10)], 'one thread, the executor, 10 lower');
  t.same(served.logLines().filter((line) => line.level !== 30), [], 'nothing logged above info');
});
