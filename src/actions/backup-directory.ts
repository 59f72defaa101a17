import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { redactText } from '../log.js';
import type { BackupFile } from '../systems/files/backups.js';
import { childCommand, exited, libpqTarget, postgresBinary, spawnClient, stderrTail } from '../systems/process/child.js';
import type { ActionContext } from './contract.js';

/**
 * Directory-format dumps (`backup.pg_dump` with `jobs`): `pg_dump -Fd -j N` dumps N tables at
 * once into one compressed file per table plus a table of contents (toc.dat, written last), and
 * `pg_restore` reads them back. Parallel dumps need the directory format; the plain format is one
 * stream.
 */

// gzip's default level, as for the plain format.
const COMPRESS_LEVEL = 6;

/** The command line: the password travels in PGPASSWORD, never in the URL. */
export function directoryDumpArgs(url: string, dir: string, jobs: number): string[] {
  return ['--format=directory', `--jobs=${jobs}`, `--compress=${COMPRESS_LEVEL}`, '--no-password', '--file', dir, '--dbname', url];
}

async function directoryBytes(dir: string): Promise<number> {
  let bytes = 0;
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (entry.isFile()) bytes += await stat(join(dir, entry.name)).then((info) => info.size, () => 0);
  }
  return bytes;
}

/**
 * pg_dump writes and fsyncs the directory itself (its default without --no-sync); no dump byte
 * passes through upkeep. The size reported is the compressed files' total, as for a plain dump.
 */
export async function dumpToDirectory(dir: string, connectionUrl: string, jobs: number, progress: { backup: string; seconds: number }, context: ActionContext): Promise<{ gzipBytes: number }> {
  const target = libpqTarget(connectionUrl);
  const command = await childCommand(await postgresBinary('pg_dump'));
  const started = Date.now();
  const timer = setInterval(() => {
    void directoryBytes(dir).then((gzipBytes) => context.log.info({ backup: progress.backup, gzipBytes, seconds: Math.round((Date.now() - started) / 1000) }, 'pg_dump in progress'));
  }, progress.seconds * 1000);
  timer.unref();
  try {
    const dump = spawnClient(command, directoryDumpArgs(target.url, dir, jobs), target.env, ['ignore', 'ignore', 'pipe'], context.signal);
    const dumpError = stderrTail(dump.stderr);
    const status = await exited(dump);
    if (status.code !== 0) throw new Error(`pg_dump exited with ${status.code ?? status.signal}: ${redactText(dumpError()) || 'no error output'}`);
    return { gzipBytes: await directoryBytes(dir) };
  } finally {
    clearInterval(timer);
  }
}

/** `pg_restore --list`: the table of contents reads in full, or the reason it does not. */
export async function archiveReadable(path: string, signal: AbortSignal): Promise<true | string> {
  const command = await childCommand(await postgresBinary('pg_restore'));
  const child = spawnClient(command, ['--list', path], {}, ['ignore', 'ignore', 'pipe'], signal);
  const error = stderrTail(child.stderr);
  const status = await exited(child);
  return status.code === 0 ? true : `pg_restore --list ${path} failed: ${error() || `exit ${status.code ?? status.signal}`}`;
}

/**
 * The restore of a verify: owners and privileges are left out (the restoring role need not own
 * the dump's objects), as the plain format's filter does, and the first error stops it.
 */
export function restoreArgs(url: string, dir: string): string[] {
  return ['--no-owner', '--no-privileges', '--exit-on-error', '--no-password', '--dbname', url, dir];
}

export async function restoreDirectory(file: BackupFile, scratchUrl: string, context: ActionContext): Promise<{ code: number | null; error: string }> {
  const libpq = libpqTarget(scratchUrl);
  const command = await childCommand(await postgresBinary('pg_restore'));
  const child = spawnClient(command, restoreArgs(libpq.url, file.path), libpq.env, ['ignore', 'ignore', 'pipe'], context.signal);
  const error = stderrTail(child.stderr);
  const status = await exited(child);
  return { code: status.code ?? -1, error: redactText(error()) };
}
