import { z } from 'zod';
import type { Config } from '../config/schema.js';
import { ValidationError } from '../errors.js';
import { globToRegExp } from '../systems/files/glob.js';
import { cleanupSteps, ensureDirectory, findFiles, type Area } from '../systems/files/sweep.js';
import type { Action, ActionContext } from './contract.js';
import { remainingAfter, runSweep, sweepPlan, type SweepOutput, type SweepPayload } from './file-steps.js';
import { count, identifier } from './params.js';
import { onFirstUse } from '../lazy-schema.js';

/**
 * files.cleanup deletes only from targets.files entries: directories the operator declared as
 * disposable. Log directories have logs.rotate, which keeps recent files.
 */
export function cleanupArea(config: Readonly<Config>, name: string): Area {
  const area = config.targets.files.find((candidate) => candidate.name === name);
  if (!area) throw new ValidationError(`unknown directory "${name}" (not in targets.files; files.cleanup deletes only from those)`);
  return area;
}

const cleanupParams = onFirstUse(() => z.strictObject({
  name: identifier,
  olderThanHours: count().refine((hours) => hours > 0, 'must be at least 1').default(24),
}));
export type CleanupParams = z.infer<typeof cleanupParams>;

async function cleanupFor(params: CleanupParams, context: ActionContext) {
  const area = cleanupArea(context.config, params.name);
  const match = globToRegExp(area.pattern);
  const found = await findFiles(area, (name) => match.test(name), context.signal);
  return { found, steps: cleanupSteps(found.files, context.now(), params.olderThanHours) };
}

export const filesCleanup: Action<CleanupParams, SweepPayload, SweepOutput> = {
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
    const { found, steps } = await cleanupFor(params, context);
    return sweepPlan(found, steps);
  },
  async run(params, payload, context) {
    const outcome = await runSweep(payload, context.signal);
    context.log.info({ name: params.name, deleted: outcome.deleted, freedBytes: outcome.freedBytes }, 'cleanup finished');
    return { detail: outcome };
  },
  async verify(params, _before, output, context) {
    const { found, steps } = await cleanupFor(params, context);
    const remaining = remainingAfter(steps, found.root, output.detail);
    if (remaining.length > 0) return { ok: false, detail: `still to delete: ${remaining.slice(0, 20).join(', ')}`, observed: { remaining: remaining.length } };
    return { ok: true, detail: `${output.detail.deleted} deleted (${output.detail.freedBytes} bytes), none left over ${params.olderThanHours}h`, observed: { remaining: 0 } };
  },
};
