import { constants, type Stats } from 'node:fs';
import { chmod, chown, link, lstat, open, readdir, realpath, rm, unlink, utimes } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { errorCode, ValidationError } from '../../errors.js';
import { nodeZlib } from '../../lazy.js';
import { globToRegExp } from './glob.js';

/*
 * Sweeping a configured directory: list the files a pattern selects (never through a symlink),
 * decide what rotation or cleanup does to them, and carry that out, each file checked again just
 * before it is touched.
 */
const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;

export interface FoundFile { path: string; sizeBytes: number; mtimeMs: number }
export interface FileStep { op: 'compress' | 'delete'; file: FoundFile }
export interface Skipped { path: string; reason: string }

/** A configured directory an action may touch; everything acted on stays below its real path. */
export interface Area { name: string; dir: string; pattern: string }

/**
 * Regular files below the area's directory whose name satisfies `accept`. Symlinks (to files or
 * directories) are never followed: they are reported as skipped, and each directory entered is
 * checked to still resolve inside the area's real path.
 */
export async function findFiles(area: Area, accept: (name: string) => boolean, signal?: AbortSignal): Promise<{ root: string; files: FoundFile[]; skipped: Skipped[] }> {
  const root = await realpath(area.dir);
  const files: FoundFile[] = [];
  const skipped: Skipped[] = [];
  const visit = async (dir: string): Promise<void> => {
    signal?.throwIfAborted();
    // A subdirectory or a file removed between its listing and its reading (a busy temporary
    // directory, the very kind files.cleanup is for) is gone, not an error: the run failed on it.
    const real = await gone(realpath(dir));
    if (real === null) return;
    if (!within(root, real)) {
      skipped.push({ path: dir, reason: `resolves outside ${root}` });
      return;
    }
    // A subdirectory upkeep's user may not read (Debian's /var/log/private is root's, 0700) is
    // skipped and named, as the logs collector does; it failed the whole run, and nothing rotated.
    const entries = dir === root ? await readdir(dir, { withFileTypes: true }) : await denied(gone(readdir(dir, { withFileTypes: true })), () => skipped.push({ path: dir, reason: 'not readable by upkeep\'s user' }));
    for (const entry of entries ?? []) {
      const path = join(dir, entry.name);
      if (entry.isSymbolicLink()) {
        if (accept(entry.name)) skipped.push({ path, reason: 'symlink (never followed)' });
      } else if (entry.isDirectory()) {
        await visit(path);
      } else if (entry.isFile() && accept(entry.name)) {
        const info = await denied(gone(lstat(path)), () => skipped.push({ path, reason: 'not readable by upkeep\'s user' }));
        if (info?.isFile()) files.push({ path, sizeBytes: info.size, mtimeMs: info.mtimeMs });
      }
    }
  };
  await visit(root);
  return { root, files: files.sort((a, b) => a.path.localeCompare(b.path)), skipped: skipped.map((entry) => ({ ...entry, path: relative(root, entry.path) })) };
}

/** Whether the real path `real` is `root` or below it. Below `/` every path starts with `/` (checking for `//` entered no subdirectory of an area at `/`). */
export function within(root: string, real: string): boolean {
  return real === root || real.startsWith(root === sep ? root : root + sep);
}

/** What `reading` gives, or null (after `onDenied`) when upkeep's user may not read it (EACCES, EPERM). */
async function denied<T>(reading: Promise<T>, onDenied: () => void): Promise<T | null> {
  return reading.catch((err: unknown) => {
    if (errorCode(err) !== 'EACCES' && errorCode(err) !== 'EPERM') throw err;
    onDenied();
    return null;
  });
}

/** What `reading` gives, or null when what it reads is gone (ENOENT, or ENOTDIR: a directory replaced by a file); other errors stay errors. */
async function gone<T>(reading: Promise<T>): Promise<T | null> {
  return reading.catch((err: unknown) => {
    if (errorCode(err) === 'ENOENT' || errorCode(err) === 'ENOTDIR') return null;
    throw err;
  });
}

/** Rotation: delete what is older than deleteAfterDays, gzip the rest that is older than compressAfterDays. */
export function rotationSteps(files: readonly FoundFile[], nowMs: number, compressAfterDays: number, deleteAfterDays: number): FileStep[] {
  const steps: FileStep[] = [];
  for (const file of files) {
    const ageMs = nowMs - file.mtimeMs;
    if (ageMs > deleteAfterDays * DAY_MS) steps.push({ op: 'delete', file });
    else if (ageMs > compressAfterDays * DAY_MS && !file.path.endsWith('.gz')) steps.push({ op: 'compress', file });
  }
  return steps;
}

export function cleanupSteps(files: readonly FoundFile[], nowMs: number, olderThanHours: number): FileStep[] {
  return files.filter((file) => nowMs - file.mtimeMs > olderThanHours * HOUR_MS).map((file) => ({ op: 'delete' as const, file }));
}

/** The pattern's files, plus the .gz files rotation made of them ("app-*.log" also covers "app-1.log.gz"). */
export function rotationMatcher(pattern: string): (name: string) => boolean {
  const match = globToRegExp(pattern);
  return (name) => match.test(name) || (name.endsWith('.gz') && match.test(name.slice(0, -3)));
}

function unchanged(before: FoundFile, now: Stats): boolean {
  return now.isFile() && now.size === before.sizeBytes && now.mtimeMs === before.mtimeMs;
}

/** gzip next to the original, keeping its times; the original goes only if it did not change meanwhile. */
async function compress(file: FoundFile): Promise<Skipped | null> {
  const target = `${file.path}.gz`;
  if (await lstat(target).then(() => true, () => false)) return { path: file.path, reason: `${basename(target)} already exists` };
  const temporary = join(dirname(file.path), `.${basename(file.path)}.gz.upkeep-tmp`);
  const source = await open(file.path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const opened = await source.stat();
    if (!unchanged(file, opened)) return { path: file.path, reason: 'changed since it was listed' };
    const output = await open(temporary, 'w', 0o640);
    try {
      // The streams close their handles when done (flush: fsync first); closing again below is a no-op.
      await pipeline(source.createReadStream(), nodeZlib().createGzip(), output.createWriteStream({ flush: true }));
    } finally {
      await output.close();
    }
    // The log's owner and mode too, as gzip and logrotate keep them: the .gz was root's and 0640,
    // so the app's user, or a log reader's group, could no longer read its own archived logs. The
    // owner only where upkeep may give it (root); set-id bits are not kept.
    await chown(temporary, opened.uid, opened.gid).catch((err: unknown) => { if (errorCode(err) !== 'EPERM') throw err; });
    await chmod(temporary, opened.mode & 0o777);
    await utimes(temporary, opened.atime, opened.mtime);
    try {
      await link(temporary, target); // unlike rename, never replaces an existing .gz
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return { path: file.path, reason: `${basename(target)} already exists` };
      throw err;
    }
  } finally {
    await source.close();
    await rm(temporary, { force: true });
  }
  if (!unchanged(file, await lstat(file.path))) {
    await unlink(target);
    return { path: file.path, reason: 'written to while being compressed' };
  }
  await unlink(file.path);
  return null;
}

async function remove(file: FoundFile): Promise<Skipped | null> {
  // Checked again just before: a file swapped for a symlink (or rewritten) since the listing stays.
  if (!unchanged(file, await lstat(file.path))) return { path: file.path, reason: 'changed since it was listed' };
  await unlink(file.path);
  return null;
}

export interface StepOutcome { compressed: string[]; deleted: string[]; skipped: Skipped[]; freedBytes: number }

export function emptyOutcome(): StepOutcome {
  return { compressed: [], deleted: [], skipped: [], freedBytes: 0 };
}

/**
 * Carries out the steps, recording each in `outcome` as it is done (paths relative to root), so a
 * caller whose sweep stops part-way (the deadline, an I/O error) still knows what was done.
 */
export async function applySteps(root: string, steps: readonly FileStep[], signal: AbortSignal, outcome: StepOutcome = emptyOutcome()): Promise<StepOutcome> {
  for (const step of steps) {
    signal.throwIfAborted();
    const skip = step.op === 'compress' ? await compress(step.file) : await remove(step.file);
    const shown = relative(root, step.file.path);
    if (skip) outcome.skipped.push({ ...skip, path: shown });
    else if (step.op === 'compress') outcome.compressed.push(shown);
    else {
      outcome.deleted.push(shown);
      outcome.freedBytes += step.file.sizeBytes;
    }
  }
  return outcome;
}

/** The area's directory exists and is a directory (after symlinks): a ValidationError says why not. */
export async function ensureDirectory(area: Area): Promise<void> {
  const info = await realpath(area.dir).then((real) => lstat(real)).catch((err: Error) => {
    throw new ValidationError(`${area.name}: cannot use ${area.dir}: ${err.message}`);
  });
  if (!info.isDirectory()) throw new ValidationError(`${area.name}: ${area.dir} is not a directory`);
}
