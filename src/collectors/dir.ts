import { stat } from 'node:fs/promises';

/**
 * Whether `dir` is there as a directory. A missing path (or a file in its place) is false, so a
 * collector can report the missing directory instead of failing and letting its series vanish,
 * which would resolve the very alerts that should fire. Anything else (no permission) throws.
 */
export async function directoryPresent(dir: string): Promise<boolean> {
  try {
    return (await stat(dir)).isDirectory();
  } catch (err) {
    const code = err instanceof Error && 'code' in err ? err.code : undefined;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw err;
  }
}
