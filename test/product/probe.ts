import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Test } from 'tap';
import { serveInstalled, writeConfig, type Served } from './installed.js';

/**
 * Serves `config` with the installed package, a probe preloaded into it with `--require`. The
 * probe (CommonJS source) polls for the file `process.env.PROBE_OUT + '.go'`, which appears once
 * /healthz answered and `before` (if any) ran, then writes its reading to PROBE_OUT. Returns the
 * reading as text, once the server stopped cleanly (asserted).
 */
export async function probeInstalled(t: Test, config: Record<string, unknown>, probe: string,
  options: { nodeOptions?: string; nodeArgs?: readonly string[]; before?: (served: Served) => Promise<void> } = {}): Promise<string> {
  const { file, dir } = await writeConfig(t, config);
  const probeFile = join(dir, 'probe.cjs');
  const out = join(dir, 'probe.json');
  await writeFile(probeFile, probe);
  const served = await serveInstalled(t, file, { env: { NODE_OPTIONS: `${options.nodeOptions ?? ''} --require ${probeFile}`.trim(), PROBE_OUT: out }, nodeArgs: options.nodeArgs });
  await options.before?.(served);
  await writeFile(`${out}.go`, '');
  let text = '';
  for (let i = 0; i < 100 && text === ''; i++) {
    text = await readFile(out, 'utf8').catch(() => '');
    if (text === '') await new Promise((resolve) => setTimeout(resolve, 100));
  }
  t.equal(await served.stop(), 0, 'the server stops cleanly');
  return text;
}
