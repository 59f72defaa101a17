import { createHook } from 'node:async_hooks';

/** How many file-system requests (each a trip through node's thread pool) `work` started. */
export async function fsRequestsDuring(work: () => Promise<void>): Promise<number> {
  let count = 0;
  const hook = createHook({ init: (_id, type) => { if (type === 'FSREQPROMISE' || type === 'FSREQCALLBACK') count += 1; } }).enable();
  try {
    await work();
  } finally {
    hook.disable();
  }
  return count;
}
