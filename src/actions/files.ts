import { constants, type Stats } from 'node:fs';
import { link, lstat, open, readdir, realpath, rm, unlink, utimes } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { z } from 'zod';
import { globToRegExp } from '../systems/files/glob.js';
import type { Config } from '../config/schema.js';
import { count, identifier } from './params.js';
import { type Action, type ActionContext, type PlanStep } from './contract.js';
import { ValidationError } from '../errors.js';

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const MAX_PLAN_STEPS = 500;
const MAX_LISTED = 200;

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
    const real = await realpath(dir);
    if (real !== root && !real.startsWith(root + sep)) {
      skipped.push({ path: dir, reason: `resolves outside ${root}` });
      return;
    }
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isSymbolicLink()) {
        if (accept(entry.name)) skipped.push({ path, reason: 'symlink (never followed)' });
      } else if (entry.isDirectory()) {
        await visit(path);
      } else if (entry.isFile() && accept(entry.name)) {
        const info = await lstat(path);
        if (info.isFile()) files.push({ path, sizeBytes: info.size, mtimeMs: info.mtimeMs });
      }
    }
  };
  await visit(root);
  return { root, files: files.sort((a, b) => a.path.localeCompare(b.path)), skipped: skipped.map((entry) => ({ ...entry, path: relative(root, entry.path) })) };
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
      await pipeline(source.createReadStream(), createGzip(), output.createWriteStream({ flush: true }));
    } finally {
      await output.close();
    }
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

/** Carries out the steps; paths in the outcome are relative to root. */
export async function applySteps(root: string, steps: readonly FileStep[], signal: AbortSignal): Promise<StepOutcome> {
  const outcome: StepOutcome = { compressed: [], deleted: [], skipped: [], freedBytes: 0 };
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

export function describeSteps(steps: readonly FileStep[]): PlanStep[] {
  const described: PlanStep[] = steps.slice(0, MAX_PLAN_STEPS).map((step) => ({
    kind: 'file',
    detail: step.op === 'compress' ? `gzip ${step.file.path} -> ${step.file.path}.gz (mtime kept), then unlink ${step.file.path}` : `unlink ${step.file.path}`,
  }));
  if (steps.length > MAX_PLAN_STEPS) described.push({ kind: 'file', detail: `... and ${steps.length - MAX_PLAN_STEPS} more files` });
  return described;
}

export function summarize(outcome: StepOutcome, skippedBeforehand: readonly Skipped[]): Record<string, unknown> {
  const skipped = [...skippedBeforehand, ...outcome.skipped];
  return {
    compressed: outcome.compressed.length,
    deleted: outcome.deleted.length,
    freedBytes: outcome.freedBytes,
    files: { compressed: outcome.compressed.slice(0, MAX_LISTED), deleted: outcome.deleted.slice(0, MAX_LISTED) },
    skipped: skipped.slice(0, MAX_LISTED),
  };
}

function logArea(config: Readonly<Config>, name: string): Area {
  const entry = config.targets.logs.find((candidate) => candidate.name === name);
  if (!entry) throw new ValidationError(`unknown log directory "${name}" (not in targets.logs)`);
  return entry;
}

/**
 * files.cleanup deletes only from targets.files entries: directories the operator declared as
 * disposable. Log directories have logs.rotate, which keeps recent files.
 */
export function cleanupArea(config: Readonly<Config>, name: string): Area {
  const area = config.targets.files.find((candidate) => candidate.name === name);
  if (!area) throw new ValidationError(`unknown directory "${name}" (not in targets.files; files.cleanup deletes only from those)`);
  return area;
}

async function ensureDirectory(area: Area): Promise<void> {
  const info = await realpath(area.dir).then((real) => lstat(real)).catch((err: Error) => {
    throw new ValidationError(`${area.name}: cannot use ${area.dir}: ${err.message}`);
  });
  if (!info.isDirectory()) throw new ValidationError(`${area.name}: ${area.dir} is not a directory`);
}

const rotateParams = z.strictObject({
  name: identifier,
  compressAfterDays: count().default(1),
  deleteAfterDays: count().refine((days) => days > 0, 'must be at least 1').default(30),
}).refine((params) => params.deleteAfterDays >= params.compressAfterDays, { message: 'deleteAfterDays must not be less than compressAfterDays', path: ['deleteAfterDays'] });
export type RotateParams = z.infer<typeof rotateParams>;

async function rotationFor(params: RotateParams, context: ActionContext) {
  const area = logArea(context.config, params.name);
  const found = await findFiles(area, rotationMatcher(area.pattern), context.signal);
  return { found, steps: rotationSteps(found.files, Date.now(), params.compressAfterDays, params.deleteAfterDays) };
}

function counts(steps: readonly FileStep[]): { compress: number; delete: number } {
  return { compress: steps.filter((step) => step.op === 'compress').length, delete: steps.filter((step) => step.op === 'delete').length };
}

/** After a run, nothing should be left to do except what the run had to skip. */
function remainingAfter(steps: readonly FileStep[], root: string, output: Record<string, unknown>): string[] {
  const skipped = new Set(z.array(z.object({ path: z.string() })).parse(output.skipped ?? []).map((entry) => entry.path));
  return steps.map((step) => relative(root, step.file.path)).filter((path) => !skipped.has(path));
}

export const logsRotate: Action<RotateParams> = {
  name: 'logs.rotate',
  description: 'gzip log files older than compressAfterDays and delete those older than deleteAfterDays, in a configured log directory.',
  riskClass: 'disruptive (a program still writing to a rotated file loses those writes); never follows symlinks',
  params: rotateParams,
  risk: () => 'disruptive',
  screen: (params, config) => { logArea(config, params.name); },
  async resolve(params, context) {
    await ensureDirectory(logArea(context.config, params.name));
    return params;
  },
  lock: (params) => ({ kind: 'local', key: `logs.rotate:${params.name}` }),
  async check(params, context) {
    const { steps, found } = await rotationFor(params, context);
    const todo = counts(steps);
    const observed = { ...todo, files: found.files.length, symlinksSkipped: found.skipped.length };
    if (steps.length === 0) return { proceed: false, reason: 'no log file is old enough to compress or delete', observed };
    return { proceed: true, reason: `${todo.compress} to compress, ${todo.delete} to delete`, observed };
  },
  async plan(params, context) {
    return describeSteps((await rotationFor(params, context)).steps);
  },
  async run(params, _plan, context) {
    const { found, steps } = await rotationFor(params, context);
    const outcome = await applySteps(found.root, steps, context.signal);
    context.log.info({ name: params.name, compressed: outcome.compressed.length, deleted: outcome.deleted.length }, 'log rotation finished');
    return { detail: summarize(outcome, found.skipped) };
  },
  async verify(params, _before, output, context) {
    const { found, steps } = await rotationFor(params, context);
    const remaining = remainingAfter(steps, found.root, output.detail);
    if (remaining.length > 0) return { ok: false, detail: `still to rotate: ${remaining.slice(0, 20).join(', ')}`, observed: { remaining: remaining.length } };
    return { ok: true, detail: `${String(output.detail.compressed)} compressed, ${String(output.detail.deleted)} deleted, nothing left to rotate`, observed: { remaining: 0 } };
  },
};

const cleanupParams = z.strictObject({
  name: identifier,
  olderThanHours: count().refine((hours) => hours > 0, 'must be at least 1').default(24),
});
export type CleanupParams = z.infer<typeof cleanupParams>;

async function cleanupFor(params: CleanupParams, context: ActionContext) {
  const area = cleanupArea(context.config, params.name);
  const match = globToRegExp(area.pattern);
  const found = await findFiles(area, (name) => match.test(name), context.signal);
  return { found, steps: cleanupSteps(found.files, Date.now(), params.olderThanHours) };
}

export const filesCleanup: Action<CleanupParams> = {
  name: 'files.cleanup',
  description: 'Delete files matching the pattern and older than olderThanHours in a targets.files directory.',
  riskClass: 'destructive (deletes files); targets.files directories and patterns only, never through a symlink',
  params: cleanupParams,
  risk: () => 'destructive',
  screen: (params, config) => { cleanupArea(config, params.name); },
  async resolve(params, context) {
    await ensureDirectory(cleanupArea(context.config, params.name));
    return params;
  },
  lock: (params) => ({ kind: 'local', key: `files.cleanup:${params.name}` }),
  async check(params, context) {
    const { steps, found } = await cleanupFor(params, context);
    const observed = { delete: steps.length, files: found.files.length, symlinksSkipped: found.skipped.length };
    if (steps.length === 0) return { proceed: false, reason: `no file is older than ${params.olderThanHours}h`, observed };
    return { proceed: true, reason: `${steps.length} files older than ${params.olderThanHours}h`, observed };
  },
  async plan(params, context) {
    return describeSteps((await cleanupFor(params, context)).steps);
  },
  async run(params, _plan, context) {
    const { found, steps } = await cleanupFor(params, context);
    const outcome = await applySteps(found.root, steps, context.signal);
    context.log.info({ name: params.name, deleted: outcome.deleted.length, freedBytes: outcome.freedBytes }, 'cleanup finished');
    return { detail: summarize(outcome, found.skipped) };
  },
  async verify(params, _before, output, context) {
    const { found, steps } = await cleanupFor(params, context);
    const remaining = remainingAfter(steps, found.root, output.detail);
    if (remaining.length > 0) return { ok: false, detail: `still to delete: ${remaining.slice(0, 20).join(', ')}`, observed: { remaining: remaining.length } };
    return { ok: true, detail: `${String(output.detail.deleted)} deleted (${String(output.detail.freedBytes)} bytes), none left over ${params.olderThanHours}h`, observed: { remaining: 0 } };
  },
};
