import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Test } from 'tap';
import { waitFor } from '../fixtures/ports.js';
import { serveInstalled, writeConfig, type Served } from './installed.js';

// A deadline for a probe that never writes (or a server-side event a probe's test waits for), not a
// time it must meet: on a loaded machine (CI runs test files side by side on 2 CPUs) the old
// generation's probe took over the 10 s this once was.
export const PROBE_DEADLINE_MS = 120_000;

/**
 * Serves `config` with the installed package, a probe preloaded into its main thread with
 * `--require`. The probe (CommonJS source) polls for the file `process.env.PROBE_OUT + '.go'`,
 * which appears once /healthz answered and `before` (if any) ran, then writes its reading to
 * PROBE_OUT. Returns the reading as text, once the server stopped cleanly (asserted); throws if
 * none came within PROBE_DEADLINE_MS. `args` are more of `serve`'s (`--log-level debug`).
 */
export async function probeInstalled(t: Test, config: Record<string, unknown>, probe: string,
  options: { nodeOptions?: string; nodeArgs?: readonly string[]; args?: readonly string[]; before?: (served: Served) => Promise<void> } = {}): Promise<string> {
  const { file, dir } = await writeConfig(t, config);
  const probeFile = join(dir, 'probe.cjs');
  const out = join(dir, 'probe.json');
  // NODE_OPTIONS preloads the probe into every thread, the executor's too: its isolate (young
  // generation capped at 3 MB) then wrote its own reading, and whichever thread wrote first was read
  // (the storm check failed 6 times in 15 runs of its file). Only the main thread's counts.
  await writeFile(probeFile, `if (require('node:worker_threads').isMainThread) {\n${probe}\n}\n`);
  const served = await serveInstalled(t, file, { env: { NODE_OPTIONS: `${options.nodeOptions ?? ''} --require ${probeFile}`.trim(), PROBE_OUT: out }, nodeArgs: options.nodeArgs, args: options.args });
  await options.before?.(served);
  await writeFile(`${out}.go`, '');
  try {
    return await waitFor(`the probe's reading in ${out}`, async () => {
      const text = await readFile(out, 'utf8');
      if (text === '') throw new Error('the file is still empty');
      return text;
    }, PROBE_DEADLINE_MS);
  } finally {
    t.equal(await served.stop(), 0, 'the server stops cleanly');
  }
}
