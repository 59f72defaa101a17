import { readdirSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/** The calls made here (0: the calling thread): node:os's, or a test's. */
export interface Priorities {
  getPriority(tid: number): number;
  setPriority(tid: number, priority: number): void;
}

const NODE_OS: Priorities = { getPriority, setPriority };

/** How much lower than the main thread every other thread of a serving upkeep runs. */
export const NICER_BY = 10;

/** NICER_BY above `nice`, at most 19 (Linux's lowest priority). */
function lowered(nice: number): number {
  return Math.min(19, nice + NICER_BY);
}

/**
 * Lowers the calling thread's priority by NICER_BY (the executor thread, as it starts). On Linux
 * a nice value belongs to one thread, and lowering one's own needs no privilege. Returns why it
 * could not, or null.
 */
export function lowerOwnPriority(os: Priorities = NODE_OS): Error | null {
  if (process.platform !== 'linux') return null;
  try {
    os.setPriority(0, lowered(os.getPriority(0)));
    return null;
  } catch (err) {
    return asError(err);
  }
}

/**
 * Called from the main thread once it serves: every other thread of the process gives way to it,
 * NICER_BY lower, as the executor thread does. The main thread acknowledges webhooks; the others
 * are V8's helpers (they collect both threads' garbage, the executor thread's too) and libuv's
 * pool (the journal's fsyncs). At nice 0 they took the CPU from acknowledgements on a busy
 * machine (docs/performance.md, "Every other thread gives way"). A thread started later keeps
 * its own priority: while serving that is only the executor thread, which lowers itself.
 * Returns why a thread could not be lowered, or null.
 */
export function lowerOtherThreads(os: Priorities = NODE_OS): Error | null {
  if (process.platform !== 'linux') return null;
  try {
    const others = readdirSync('/proc/self/task').map(Number).filter((tid) => tid !== process.pid);
    lowerThreads(others, lowered(os.getPriority(0)), os);
    return null;
  } catch (err) {
    return asError(err);
  }
}

/** Sets each thread below `target` to it. A thread that ended meanwhile (ESRCH) is skipped; any other failure is thrown. */
export function lowerThreads(tids: readonly number[], target: number, os: Priorities = NODE_OS): void {
  for (const tid of tids) {
    try {
      if (os.getPriority(tid) < target) os.setPriority(tid, target);
    } catch (err) {
      if (!asError(err).message.includes('ESRCH')) throw err;
    }
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
