import { readdirSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import t from 'tap';
import { lowerOtherThreads, lowerOwnPriority, lowerThreads, NICER_BY, type Priorities } from '../src/thread-priority.js';

const linuxOnly = { skip: process.platform === 'linux' ? false : 'nice values are per thread on Linux only' };

/** This process's threads and their nice values (field 19 of /proc/self/task/TID/stat). */
function niceValues(): Map<number, number> {
  const nice = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      nice.set(Number(tid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
    } catch {
      // A thread may end between the listing and the read.
    }
  }
  return nice;
}

/** A fake of node:os's calls: threads with their nice values; `fail` throws for one thread. */
function fakeThreads(values: Record<number, number>, fail: Record<number, string> = {}): Priorities & { values: Record<number, number> } {
  return {
    values,
    getPriority: (tid) => {
      const message = fail[tid];
      if (message !== undefined) throw new Error(message);
      return values[tid] ?? 0;
    },
    setPriority: (tid, priority) => { values[tid] = priority; },
  };
}

t.test('lowerThreads raises each thread below the target to it and leaves the others', async (t) => {
  const os = fakeThreads({ 1: 0, 2: 5, 3: 12, 4: 10 });
  lowerThreads([1, 2, 3, 4], 10, os);
  t.same(os.values, { 1: 10, 2: 10, 3: 12, 4: 10 });
});

t.test('lowerThreads skips a thread that ended meanwhile and throws on any other failure', async (t) => {
  const ended = fakeThreads({ 1: 0, 3: 0 }, { 2: 'A system error occurred: uv_os_getpriority returned ESRCH (no such process)' });
  lowerThreads([1, 2, 3], 10, ended);
  t.same(ended.values, { 1: 10, 3: 10 }, 'the threads on either side are lowered');
  const denied = fakeThreads({ 1: 0 }, { 2: 'A system error occurred: uv_os_setpriority returned EACCES (permission denied)' });
  t.throws(() => lowerThreads([2, 1], 10, denied), /EACCES/);
  t.same(denied.values, { 1: 0 }, 'nothing after the failure is touched');
});

t.test('lowerOtherThreads lowers every thread of the process but the main one', linuxOnly, async (t) => {
  // A worker, so that the process has a thread node did not start itself.
  const worker = new Worker('setInterval(() => {}, 1000);', { eval: true });
  t.teardown(() => worker.terminate());
  await once(worker, 'online');
  const before = niceValues();
  const main = before.get(process.pid) ?? NaN;
  const target = Math.min(19, main + NICER_BY);
  t.ok([...before.values()].some((value) => value < target), `some thread starts at a nice value under ${target}`);

  t.equal(lowerOtherThreads(), null);
  const after = niceValues();
  t.equal(after.get(process.pid), main, 'the main thread keeps its priority');
  const others = [...after].filter(([tid]) => tid !== process.pid).map(([, value]) => value);
  t.ok(others.length >= 2, `${others.length} other threads`);
  t.same(others.filter((value) => value !== target), [], `every other thread at ${target}`);
});

t.test('lowerOwnPriority lowers only the thread that calls it', linuxOnly, async (t) => {
  const worker = new Worker(new URL('./fixtures/lower-own-priority.ts', import.meta.url));
  t.teardown(() => worker.terminate());
  const main = niceValues().get(process.pid) ?? NaN;
  const [reply] = await once(worker, 'message');
  t.same(reply, { failed: null, nice: Math.min(19, main + NICER_BY) });
  t.equal(niceValues().get(process.pid), main, 'the main thread keeps its priority');
});

t.test('a thread that cannot be lowered is reported, not thrown', linuxOnly, async (t) => {
  const denied = 'A system error occurred: uv_os_setpriority returned EACCES (permission denied)';
  const os: Priorities = { getPriority: () => 0, setPriority: () => { throw new Error(denied); } };
  t.equal(lowerOwnPriority(os)?.message, denied);
  t.equal(lowerOtherThreads(os)?.message, denied);
});

t.test('off Linux both do nothing', async (t) => {
  const platform = Object.getOwnPropertyDescriptor(process, 'platform');
  t.teardown(() => { if (platform) Object.defineProperty(process, 'platform', platform); });
  Object.defineProperty(process, 'platform', { value: 'darwin' });
  t.equal(lowerOwnPriority(), null);
  t.equal(lowerOtherThreads(), null);
});
