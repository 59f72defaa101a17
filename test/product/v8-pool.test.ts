import { readdir, readFile, realpath } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import t, { type Test } from 'tap';
import { serveInstalled, upkeepScript, writeConfig, type Served } from './installed.js';

/**
 * bin/upkeep, the command npm links into PATH, starts node with V8's helper threads sized to the
 * machine (one per CPU beyond the first, at most node's own four) and keeps a user's
 * --v8-pool-size from NODE_OPTIONS. Read from the running servers' command lines and threads.
 */
const SIZED = Math.min(4, Math.max(1, availableParallelism() - 1));

async function serve(t: Test, env: Record<string, string> = {}): Promise<{ served: Served; argv: string[]; threads: number }> {
  const { file } = await writeConfig(t, { targets: { disks: [{ path: '/' }] } });
  const served = await serveInstalled(t, file, { env });
  const pid = served.child.pid ?? 0;
  const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter((arg) => arg !== '');
  return { served, argv, threads: (await readdir(`/proc/${pid}/task`)).length };
}

t.test('the installed upkeep runs node with V8\'s helper threads sized to the CPUs, unless the user sized them', async (t) => {
  const script = await realpath(await upkeepScript());
  const sized = await serve(t);
  const own = await serve(t, { NODE_OPTIONS: '--v8-pool-size=4' });
  t.same(sized.argv.slice(0, 4), ['node', `--v8-pool-size=${SIZED}`, script, 'serve'], 'the process signalled is node itself, with the flag, running bin/upkeep.js');
  t.same(own.argv.slice(0, 3), ['node', script, 'serve'], 'a --v8-pool-size in NODE_OPTIONS is left to node');
  t.equal(own.threads - sized.threads, 4 - SIZED, `${availableParallelism()} CPUs: ${sized.threads} threads against ${own.threads} with node's four helpers`);
  t.equal(await sized.served.stop(), 0, 'it stops cleanly on SIGTERM');
});

t.test('OpenMP\'s thread count in the environment does not size V8\'s helpers (nproc would print it)', async (t) => {
  const script = await realpath(await upkeepScript());
  const { served, argv } = await serve(t, { OMP_NUM_THREADS: '8', OMP_THREAD_LIMIT: '8' });
  t.same(argv.slice(0, 4), ['node', `--v8-pool-size=${SIZED}`, script, 'serve'], `${availableParallelism()} CPUs, OMP_NUM_THREADS=8: --v8-pool-size=${SIZED}`);
  t.equal(await served.stop(), 0, 'it stops cleanly on SIGTERM');
});
