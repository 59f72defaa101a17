import { createHook } from 'node:async_hooks';

/**
 * The file-system requests (each a trip through node's thread pool) `work` started, each named by
 * the fs call that made it (`write`, `fdatasync`, `open`, or `unknown`): read from the stack when
 * the request is made, the frame after async_hooks' own.
 */
export async function fsRequestsDuring(work: () => Promise<void>): Promise<string[]> {
  const calls: string[] = [];
  const hook = createHook({
    init: (_id, type) => {
      if (type !== 'FSREQPROMISE' && type !== 'FSREQCALLBACK') return;
      const frames = (new Error().stack ?? '').split('\n');
      const native = frames.findIndex((frame) => frame.includes('emitInitNative'));
      calls.push(/^\s*at (?:async )?(\S+) \(/.exec(frames[native + 1] ?? '')?.[1] ?? 'unknown');
    },
  }).enable();
  try {
    await work();
  } finally {
    hook.disable();
  }
  return calls;
}

/**
 * The requests other than fsyncs: a line's fsync may start at once after its write (LineWriter
 * spaces fsyncs by SYNC_SPACING_MS from the last one's start, and on a loaded disk the last took
 * longer than that), which a test of the write itself must not count.
 */
export function besidesFsyncs(calls: readonly string[]): string[] {
  return calls.filter((call) => call !== 'fdatasync' && call !== 'fsync');
}
