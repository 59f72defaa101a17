import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { errorCode } from '../../errors.js';

/**
 * `mkdir -p`, without node's `mkdir(path, { recursive: true })`: under /proc that call never
 * settles and spins a thread at 100 % CPU (procfs answers ENOENT for `mkdir /proc/x`, node reads
 * that as a missing parent, finds `/proc` and tries `/proc/x` again, forever; node 20), so a
 * `state.dir`, a backup `dir` or `upkeep rules --out` there hung upkeep instead of failing. Here
 * each missing directory is made on its own, from the deepest one that exists down, and the
 * first refusal is thrown as mkdir gave it.
 */
export async function makeDirectory(path: string): Promise<void> {
  const target = resolve(path);
  const missing: string[] = [];
  for (let current = target; ; current = dirname(current)) {
    const found = await stat(current).then((info) => info, (err: unknown) => {
      if (errorCode(err) === 'ENOENT') return null;
      throw err;
    });
    // A file where the directory should be: mkdir's own EEXIST, as `mkdir -p` gives.
    if (found && current === target && !found.isDirectory()) await mkdir(target);
    if (found) break;
    missing.push(current);
    if (dirname(current) === current) break;
  }
  for (const dir of missing.reverse()) {
    await mkdir(dir).catch(async (err: unknown) => {
      // Made meanwhile by someone else (another replica starting on the same state.dir): fine.
      const made = errorCode(err) === 'EEXIST' && await stat(dir).then((info) => info.isDirectory(), () => false);
      if (!made) throw err;
    });
  }
}
