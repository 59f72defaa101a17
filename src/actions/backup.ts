import { link, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { listBackups, newestValidBackup, type BackupFile } from '../systems/files/backups.js';
import { globToRegExp } from '../systems/files/glob.js';
import type { BackupTarget, Config } from '../config/schema.js';
import { redactText } from '../log.js';
import { followGzip, sha256File } from '../systems/files/gzip-follow.js';
import { childCommand, dumpEnding, exited, libpqTarget, postgresBinary, spawnClient, stderrTail } from '../systems/process/child.js';
import { withClient } from './postgres-session.js';
import { archiveReadable, directoryDumpArgs, dumpToDirectory } from './backup-directory.js';
import { count, identifier, progressSeconds } from './params.js';
import { type Action, type ActionContext, type LockSpec, type PlanStep } from './contract.js';
import { ValidationError } from '../errors.js';
import { onFirstUse } from '../lazy-schema.js';
import { makeDirectory } from '../systems/files/make-directory.js';

const DAY_SECONDS = 86_400;
// gzip's default level, the one the runbook's `| gzip` uses.
const GZIP_LEVEL = 6;
/** What pg_dump writes last in a plain dump; a dump without it was cut short. */
export const DUMP_TRAILER = '-- PostgreSQL database dump complete';

export type SourcedBackup = BackupTarget & { source: NonNullable<BackupTarget['source']> };

/**
 * Dumps and verifies of one backup take turns across replicas: the advisory lock lives on the
 * source's server, which every replica reaches.
 */
export function backupLock(params: { backup: string }, config: Readonly<Config>): LockSpec {
  const { source } = requireBackup(config, params.backup);
  return { kind: 'postgres', target: source.target, database: source.database, key: `backup:${params.backup}` };
}

export function requireBackup(config: Readonly<Config>, name: string): SourcedBackup {
  const entry = config.targets.backups.find((candidate) => candidate.name === name);
  if (!entry) throw new ValidationError(`unknown backup "${name}" (not in targets.backups)`);
  const { source } = entry;
  if (!source) throw new ValidationError(`backup "${name}" has no source: set targets.backups[${name}].source { target, database }`);
  if (!config.targets.postgres.some((target) => target.name === source.target)) {
    throw new ValidationError(`backup "${name}": source target "${source.target}" is not in targets.postgres`);
  }
  return { ...entry, source };
}

/** The plain format's gzipped file, and the directory format's directory (`jobs`). */
const PLAIN = '.sql.gz';
const DIRECTORY = '.dir';

/**
 * NAME_YYYYmmdd_HHMMSS.sql.gz (or .dir for a directory-format dump), in UTC so names never go
 * backwards across DST. Two dumps within one second would share it: see freeDestination.
 */
export function backupFileName(name: string, at: Date, directory = false): string {
  const pad = (value: number) => String(value).padStart(2, '0');
  const stamp = `${at.getUTCFullYear()}${pad(at.getUTCMonth() + 1)}${pad(at.getUTCDate())}_${pad(at.getUTCHours())}${pad(at.getUTCMinutes())}${pad(at.getUTCSeconds())}`;
  return `${name}_${stamp}${directory ? DIRECTORY : PLAIN}`;
}

/** Files past keepDays, never the newest valid backup (even when it is old itself). */
export function retentionVictims(files: readonly BackupFile[], newest: BackupFile | null, nowSeconds: number, keepDays: number): BackupFile[] {
  return files.filter((file) => file.path !== newest?.path && nowSeconds - file.mtimeSeconds > keepDays * DAY_SECONDS);
}

function partialName(file: string): string {
  return `${file}.partial`;
}

/** NAME_YYYYmmdd_HHMMSS.sql.gz or .dir, followed by `suffix`, as a RegExp. */
function backupNamePattern(name: string, suffix: string): RegExp {
  return new RegExp(`^${name.replace(/[.+^${}()|[\]\\*?-]/g, '\\$&')}_\\d{8}_\\d{6}\\.(sql\\.gz|dir)${suffix.replace('.', '\\.')}$`);
}

/** Leftovers of dumps that died (kill -9, power loss): ours by name, and nobody else dumps while we hold the lock. */
async function removeStalePartials(backup: SourcedBackup): Promise<string[]> {
  const ours = backupNamePattern(backup.name, '.partial');
  const stale = (await readdir(backup.dir)).filter((name) => ours.test(name));
  for (const name of stale) await rm(join(backup.dir, name), { recursive: true, force: true });
  return stale;
}

/**
 * A plain dump, checked while pg_dump wrote it: the file's SHA-256, and what is wrong with its
 * content (null: it decompresses in full and ends with pg_dump's trailer).
 */
type PlainDump = { gzipBytes: number; sha256: string; problem: string | null };
type DumpResult = PlainDump | { gzipBytes: number };

/** The runbook's gzip, done by pg_dump itself: for plain format, --compress gzips the whole output. */
export function pgDumpArgs(url: string): string[] {
  return ['--format=plain', `--compress=${GZIP_LEVEL}`, '--no-password', '--dbname', url];
}

/**
 * pg_dump writes the gzipped dump straight into the partial file (its stdout is the file), so the
 * speed is pg_dump's own. Meanwhile upkeep reads the file as it grows, decompresses and hashes it
 * (followGzip): the check that the dump is whole costs the second CPU during the dump, not a second
 * pass over the file after it (bench/backup.ts). The file is fsynced before it is closed.
 */
async function dumpTo(partial: string, backup: SourcedBackup, progressSeconds: number, context: ActionContext): Promise<PlainDump> {
  const target = libpqTarget(context.connections.postgresUrl(backup.source.target, backup.source.database));
  const command = await childCommand(await postgresBinary('pg_dump'));
  const handle = await open(partial, 'wx', 0o640);
  const started = Date.now();
  const progress = setInterval(() => {
    void handle.stat().then((info) => context.log.info({ backup: backup.name, gzipBytes: info.size, seconds: Math.round((Date.now() - started) / 1000) }, 'pg_dump in progress'), () => undefined);
  }, progressSeconds * 1000);
  progress.unref();
  try {
    const dump = spawnClient(command, pgDumpArgs(target.url), target.env, ['ignore', handle.fd, 'pipe'], context.signal);
    const dumpError = stderrTail(dump.stderr);
    const dumped = exited(dump);
    const followed = followDump(partial, dumped, context.signal);
    // Awaited below; until then a failure must not count as unhandled.
    followed.catch(() => undefined);
    const status = await dumped;
    if (status.code !== 0) {
      await followed.catch(() => undefined);
      throw new Error(`pg_dump exited with ${status.code ?? status.signal}: ${redactText(dumpError()) || 'no error output'}`);
    }
    await handle.sync();
    return await followed;
  } finally {
    clearInterval(progress);
    await handle.close();
  }
}

/** Follows a plain dump while `writerDone` is pending (followGzip), and says what is wrong with it, if anything. */
export async function followDump(path: string, writerDone: Promise<unknown>, signal: AbortSignal): Promise<PlainDump> {
  const { bytes, sha256, ending } = await followGzip(path, writerDone, signal);
  const name = basename(path).replace(/\.partial$/, '');
  const problem = !ending.ok ? `${name} is corrupt or truncated: ${ending.error}` : ending.text.includes(DUMP_TRAILER) ? null : `${name} is incomplete: no "${DUMP_TRAILER}" at its end`;
  return { gzipBytes: bytes, sha256, problem };
}

async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Whether the file decompresses in full to a dump that ends with pg_dump's trailer. */
export async function dumpComplete(path: string, signal: AbortSignal): Promise<boolean> {
  return (await dumpEnding(path, signal)).includes(DUMP_TRAILER);
}

const backupParams = onFirstUse(() => z.strictObject({
  backup: identifier,
  /** Overrides the backup's keepDays for this run. */
  keepDays: count().refine((days) => days > 0, 'must be at least 1').optional(),
  /** How often a long dump logs its progress. */
  progressSeconds: progressSeconds(),
  /**
   * Dump this many tables at once (`pg_dump --format=directory --jobs N`, N + 1 connections to
   * the source) into a NAME_YYYYmmdd_HHMMSS.dir directory; without it, one gzipped plain stream.
   */
  jobs: count().refine((jobs) => jobs >= 1 && jobs <= 32, 'must be 1 to 32').optional(),
}));
export type BackupParams = z.infer<typeof backupParams>;

function destination(backup: SourcedBackup, at: Date, directory: boolean): string {
  return join(backup.dir, backupFileName(backup.name, at, directory));
}

const FREE_NAME_SECONDS = 60;

async function taken(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/**
 * The dump's name: the second it is planned in, or the first later second whose name is free. A
 * second dump within the same second (a retry, a manual run right after a scheduled one) would
 * otherwise dump in full and then fail to take a name that is taken, since a backup is never
 * replaced. The backup's lock keeps other dumps of it away until this one has its name.
 */
async function freeDestination(backup: SourcedBackup, atMs: number, directory: boolean): Promise<string> {
  for (let second = 0; second < FREE_NAME_SECONDS; second += 1) {
    const file = destination(backup, new Date(atMs + second * 1000), directory);
    if (!(await taken(file))) return file;
  }
  throw new Error(`backup "${backup.name}": the names for the next ${FREE_NAME_SECONDS} seconds are all taken in ${backup.dir}`);
}

/** What run() does: dump to exactly `file` (through `file`.partial), then delete exactly `victims`. */
export interface DumpPayload {
  readonly file: string;
  /** Backups past keepDays when the run was planned; the dump about to be written is newer than all of them. */
  readonly victims: readonly string[];
}

/** What run() wrote, journalled and read back by verify. */
export type DumpOutput = DumpResult & { file: string; seconds: number; deleted: string[]; removedPartials: string[] };

export const pgDump: Action<BackupParams, DumpPayload, DumpOutput> = {
  name: 'backup.pg_dump',
  description: 'Stream pg_dump through gzip to DIR/NAME_YYYYmmdd_HHMMSS.sql.gz via a temporary name, fsync and rename it, then keep keepDays days (never the newest valid backup).',
  riskClass: 'safe (reads the database; deletes only backups past keepDays, never the newest)',
  params: backupParams,
  risk: () => 'safe',
  screen: (params, config) => { requireBackup(config, params.backup); },
  async resolve(params, context) {
    const backup = requireBackup(context.config, params.backup);
    const sample = backupFileName(backup.name, new Date(context.now()), params.jobs !== undefined);
    if (!globToRegExp(backup.pattern).test(sample)) {
      const suggested = params.jobs === undefined ? `${backup.name}_*.sql.gz` : `${backup.name}_*`;
      throw new ValidationError(`backup "${backup.name}": pg_dump writes names like ${sample}, which pattern "${backup.pattern}" does not match; use pattern "${suggested}"`);
    }
    // The source database must exist (withClient says so clearly when it does not).
    await withClient(context, backup.source.target, backup.source.database, async (client) => client.query('select 1'));
    return params;
  },
  lock: backupLock,
  async check(params, context) {
    const backup = requireBackup(context.config, params.backup);
    const newest = await newestValidBackup(await listBackups(backup.dir, backup.pattern).catch(() => []));
    return { proceed: true, reason: newest ? `newest backup is ${newest.name}` : 'no backup yet', observed: { newest: newest?.name ?? null } };
  },
  async plan(params, context) {
    const backup = requireBackup(context.config, params.backup);
    const file = await freeDestination(backup, context.now(), params.jobs !== undefined);
    const target = libpqTarget(context.connections.postgresUrl(backup.source.target, backup.source.database));
    const files = await listBackups(backup.dir, backup.pattern).catch(() => []);
    const victims = retentionVictims(files, null, context.now() / 1000, params.keepDays ?? backup.keepDays);
    // Exactly the command line run (the password travels in PGPASSWORD, never in the URL).
    const dump = params.jobs === undefined
      ? `${await postgresBinary('pg_dump')} ${pgDumpArgs(target.url).join(' ')} > ${partialName(file)}`
      : `${await postgresBinary('pg_dump')} ${directoryDumpArgs(target.url, partialName(file), params.jobs).join(' ')}`;
    const steps: PlanStep[] = [
      { kind: 'exec', detail: dump },
      // As publish() does: a file is linked (a link never replaces a backup), a directory renamed once its name is free.
      { kind: 'file', detail: params.jobs === undefined
        ? `fsync ${partialName(file)}, link it to ${file}, unlink ${partialName(file)}, fsync ${backup.dir}`
        : `pg_dump fsyncs ${partialName(file)}, rename it to ${file} if that name is free, fsync ${backup.dir}` },
      ...victims.map((victim): PlanStep => ({ kind: 'file', detail: `unlink ${victim.path} (older than ${params.keepDays ?? backup.keepDays} days)` })),
    ];
    return { steps, payload: { file, victims: victims.map((victim) => victim.path) } };
  },
  async run(params, payload, context) {
    const backup = requireBackup(context.config, params.backup);
    await makeDirectory(backup.dir);
    const removedPartials = await removeStalePartials(backup);
    const { file } = payload;
    const partial = partialName(file);
    const started = Date.now();
    try {
      const dumped = params.jobs === undefined
        ? await dumpTo(partial, backup, params.progressSeconds, context)
        : await dumpToDirectory(partial, context.connections.postgresUrl(backup.source.target, backup.source.database), params.jobs, { backup: backup.name, seconds: params.progressSeconds }, context);
      // Judged before it takes its name and before any older backup goes: a dump found corrupt or
      // incomplete (or one whose check could not finish) is removed, and the backups kept. Past
      // this point the older backups were deleted before verify() said the new one was bad.
      const problem = 'problem' in dumped ? dumped.problem : await archiveProblem(partial, context.signal);
      if (problem !== null) throw new Error(`${problem}; it was removed, and no older backup was deleted`);
      await publish(partial, file);
      await fsyncDirectory(backup.dir);
      const deleted = await removeVictims(payload.victims);
      const seconds = (Date.now() - started) / 1000;
      context.log.info({ backup: backup.name, file, ...dumped, seconds }, 'backup written');
      return { detail: { file, ...dumped, seconds, deleted, removedPartials } };
    } catch (err) {
      await rm(partial, { recursive: true, force: true });
      throw err;
    }
  },
  async verify(params, _before, output, context) {
    const backup = requireBackup(context.config, params.backup);
    const { file } = output.detail;
    const listed = (await listBackups(backup.dir, backup.pattern)).find((candidate) => candidate.path === file);
    if (!listed) return { ok: false, detail: `${file} is not counted as a backup (missing, empty, or not matching ${backup.pattern})` };
    if (listed.directory) {
      const readable = await archiveReadable(file, context.signal);
      if (readable !== true) return { ok: false, detail: readable };
      return { ok: true, detail: `${listed.name}: ${listed.sizeBytes} bytes, a directory-format dump whose table of contents pg_restore reads`, observed: { sizeBytes: listed.sizeBytes } };
    }
    if (!('sha256' in output.detail)) return { ok: false, detail: `${listed.name}: the run recorded no check of the dump` };
    // run() publishes only a dump whose check found no problem; a journalled output says so again here.
    const { sha256, problem } = output.detail;
    if (problem !== null) return { ok: false, detail: problem };
    const onDisk = await sha256File(file, context.signal);
    if (onDisk !== sha256) return { ok: false, detail: `${listed.name} changed after it was written: SHA-256 ${onDisk}, written ${sha256}` };
    return { ok: true, detail: `${listed.name}: ${listed.sizeBytes} bytes, decompresses in full and ends with the pg_dump trailer (checked as it was written; the same SHA-256 on disk)`, observed: { sizeBytes: listed.sizeBytes } };
  },
};

/**
 * The finished dump takes its name, never replacing an existing backup: a file by a hard link
 * (which fails on an existing name, unlike rename), a directory by rename after checking the name
 * is free (the backup's lock keeps other dumps of it away meanwhile).
 */
async function publish(partial: string, file: string): Promise<void> {
  if (!(await stat(partial)).isDirectory()) {
    await link(partial, file);
    await unlink(partial);
    return;
  }
  if (await taken(file)) throw new Error(`${file} already exists; not replacing it`);
  await rename(partial, file);
}

/** What is wrong with a directory-format dump (its table of contents does not read), or null. */
async function archiveProblem(path: string, signal: AbortSignal): Promise<string | null> {
  const readable = await archiveReadable(path, signal);
  return readable === true ? null : readable.replace(path, basename(path).replace(/\.partial$/, ''));
}

/** The planned victims (files, or directory-format dumps); one already gone (removed by hand meanwhile) is no error. */
async function removeVictims(victims: readonly string[]): Promise<string[]> {
  const deleted: string[] = [];
  for (const victim of victims) {
    if (!(await taken(victim))) continue;
    await rm(victim, { recursive: true });
    deleted.push(basename(victim));
  }
  return deleted;
}
