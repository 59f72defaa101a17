import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { globToRegExp } from './glob.js';

export interface BackupFile { name: string; path: string; sizeBytes: number; mtimeSeconds: number }

// A dump still being written (or abandoned by a crash) must never count as the newest backup.
const IN_PROGRESS = /\.(tmp|partial)$|^\./;
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);

/** Regular, non-empty files matching the pattern that are not temporary, newest first. */
export async function listBackups(dir: string, pattern: string): Promise<BackupFile[]> {
  const match = globToRegExp(pattern);
  const entries = await readdir(dir, { withFileTypes: true });
  const files: BackupFile[] = [];
  for (const entry of entries) {
    if (!entry.isFile() || IN_PROGRESS.test(entry.name) || !match.test(entry.name)) continue;
    const path = join(dir, entry.name);
    const info = await stat(path);
    if (info.size === 0) continue;
    files.push({ name: entry.name, path, sizeBytes: info.size, mtimeSeconds: info.mtimeMs / 1000 });
  }
  return files.sort((a, b) => b.mtimeSeconds - a.mtimeSeconds);
}

/** A .gz file must at least start with the gzip magic bytes; a cheap guard against truncated-to-garbage files. */
export async function looksValid(file: BackupFile): Promise<boolean> {
  if (!file.name.endsWith('.gz')) return true;
  const handle = await open(file.path, 'r');
  try {
    const head = Buffer.alloc(2);
    const { bytesRead } = await handle.read(head, 0, 2, 0);
    return bytesRead === 2 && head.equals(GZIP_MAGIC);
  } finally {
    await handle.close();
  }
}

export async function newestValidBackup(files: readonly BackupFile[]): Promise<BackupFile | null> {
  for (const file of files) if (await looksValid(file)) return file;
  return null;
}
