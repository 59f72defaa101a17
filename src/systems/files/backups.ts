import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { globToRegExp } from './glob.js';
import { errorCode } from '../../errors.js';

/**
 * One backup: a file (a plain dump, NAME_….sql.gz) or a directory-format dump (`pg_dump -Fd`,
 * NAME_….dir), whose size is its files' and whose time is its table of contents' (written last).
 */
export interface BackupFile { name: string; path: string; sizeBytes: number; mtimeSeconds: number; directory?: true }

// A dump still being written (or abandoned by a crash) must never count as the newest backup.
const IN_PROGRESS = /\.(tmp|partial)$|^\./;
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
/** What a custom or directory-format archive's table of contents starts with. */
const ARCHIVE_MAGIC = Buffer.from('PGDMP');
/** The table of contents of a directory-format dump. */
export const TOC_FILE = 'toc.dat';

/** A matching entry upkeep's user may not read (EACCES, EPERM): pg_dump -Fd makes its directory 0700, so another user's dump is one. */
export type OnUnreadable = (path: string, err: unknown) => void;

async function directoryBackup(name: string, path: string, onUnreadable: OnUnreadable): Promise<BackupFile | null> {
  try {
    const toc = await stat(join(path, TOC_FILE));
    if (!toc.isFile()) return null;
    let sizeBytes = 0;
    for (const entry of await readdir(path, { withFileTypes: true })) {
      if (entry.isFile()) sizeBytes += (await stat(join(path, entry.name))).size;
    }
    return { name, path, sizeBytes, mtimeSeconds: toc.mtimeMs / 1000, directory: true };
  } catch (err) {
    // No toc.dat (not a dump), or retention removing the dump meanwhile.
    if (errorCode(err) !== 'ENOENT') unreadable(path, err, onUnreadable);
    return null;
  }
}

/**
 * Non-empty regular files and directory-format dumps (directories with a toc.dat) matching the
 * pattern that are not temporary, newest first.
 */
export async function listBackups(dir: string, pattern: string, onUnreadable: OnUnreadable = () => undefined): Promise<BackupFile[]> {
  const match = globToRegExp(pattern);
  const entries = await readdir(dir, { withFileTypes: true });
  const files: BackupFile[] = [];
  for (const entry of entries) {
    if (IN_PROGRESS.test(entry.name) || !match.test(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      const backup = await directoryBackup(entry.name, path, onUnreadable);
      if (backup) files.push(backup);
      continue;
    }
    if (!entry.isFile()) continue;
    const info = await stat(path);
    if (info.size === 0) continue;
    files.push({ name: entry.name, path, sizeBytes: info.size, mtimeSeconds: info.mtimeMs / 1000 });
  }
  return files.sort((a, b) => b.mtimeSeconds - a.mtimeSeconds);
}

async function startsWith(path: string, magic: Buffer): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(magic.length);
    const { bytesRead } = await handle.read(head, 0, magic.length, 0);
    return bytesRead === magic.length && head.equals(magic);
  } finally {
    await handle.close();
  }
}

/**
 * A cheap guard against truncated-to-garbage backups: a .gz file must start with the gzip magic
 * bytes, a directory-format dump's table of contents with the archive's.
 */
export async function looksValid(file: BackupFile): Promise<boolean> {
  if (file.directory) return startsWith(join(file.path, TOC_FILE), ARCHIVE_MAGIC);
  if (!file.name.endsWith('.gz')) return true;
  return startsWith(file.path, GZIP_MAGIC);
}

/**
 * How far ahead of upkeep's clock a backup's time may be: clocks kept by NTP (the dumping host's,
 * or a file server's stamping the file) differ by well under a second, by minutes only before NTP
 * steps one; 5 minutes is nothing beside the backup alerts' hours.
 */
export const CLOCK_SKEW_SECONDS = 300;

/**
 * Modified later than now plus the skew allowance: touched, copied with a wrong time, or written
 * while a clock was far ahead. Such a file never counts as the newest valid backup: a corrupt one
 * dated 2099 became it, so the backup's age stayed negative (BackupTooOld could never fire) and
 * retention protected it instead of the real newest.
 */
export function fromTheFuture(file: BackupFile, nowSeconds: number): boolean {
  return file.mtimeSeconds > nowSeconds + CLOCK_SKEW_SECONDS;
}

/** The first of `files` (newest first, as listBackups gives them) that looksValid and is not fromTheFuture. */
export async function newestValidBackup(files: readonly BackupFile[], nowSeconds = Date.now() / 1000, onUnreadable: OnUnreadable = () => undefined): Promise<BackupFile | null> {
  for (const file of files) {
    if (fromTheFuture(file, nowSeconds)) continue;
    if (await looksValid(file).catch((err: unknown) => unreadable(file.path, err, onUnreadable))) return file;
  }
  return null;
}

/** False after telling onUnreadable, for a backup upkeep's user may not read; any other error is thrown. */
function unreadable(path: string, err: unknown, onUnreadable: OnUnreadable): false {
  if (errorCode(err) !== 'EACCES' && errorCode(err) !== 'EPERM') throw err;
  onUnreadable(path, err);
  return false;
}
