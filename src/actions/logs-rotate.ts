import { z } from 'zod';
import type { Config } from '../config/schema.js';
import { ValidationError } from '../errors.js';
import { ensureDirectory, findFiles, rotationMatcher, rotationSteps, type Area } from '../systems/files/sweep.js';
import type { Action, ActionContext } from './contract.js';
import { counts, remainingAfter, runSweep, sweepPlan, type SweepOutput, type SweepPayload } from './file-steps.js';
import { count, identifier } from './params.js';
import { onFirstUse } from '../lazy-schema.js';

function logArea(config: Readonly<Config>, name: string): Area {
  const entry = config.targets.logs.find((candidate) => candidate.name === name);
  if (!entry) throw new ValidationError(`unknown log directory "${name}" (not in targets.logs)`);
  return entry;
}

const rotateParams = onFirstUse(() => z.strictObject({
  name: identifier,
  compressAfterDays: count().default(1),
  deleteAfterDays: count().refine((days) => days > 0, 'must be at least 1').default(30),
}).refine((params) => params.deleteAfterDays >= params.compressAfterDays, { message: 'deleteAfterDays must not be less than compressAfterDays', path: ['deleteAfterDays'] }));
export type RotateParams = z.infer<typeof rotateParams>;

async function rotationFor(params: RotateParams, context: ActionContext) {
  const area = logArea(context.config, params.name);
  const found = await findFiles(area, rotationMatcher(area.pattern), context.signal);
  return { found, steps: rotationSteps(found.files, context.now(), params.compressAfterDays, params.deleteAfterDays) };
}

export const logsRotate: Action<RotateParams, SweepPayload, SweepOutput> = {
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
    const { found, steps } = await rotationFor(params, context);
    return sweepPlan(found, steps);
  },
  async run(params, payload, context) {
    const outcome = await runSweep(payload, context.signal);
    context.log.info({ name: params.name, compressed: outcome.compressed, deleted: outcome.deleted }, 'log rotation finished');
    return { detail: outcome };
  },
  async verify(params, _before, output, context) {
    const { found, steps } = await rotationFor(params, context);
    const remaining = remainingAfter(steps, found.root, output.detail);
    if (remaining.length > 0) return { ok: false, detail: `still to rotate: ${remaining.slice(0, 20).join(', ')}`, observed: { remaining: remaining.length } };
    // What the run left as it was (an X.gz already there, a symlink) is said here too: the CLI
    // printed "nothing left to rotate" while app.log stayed uncompressed, and only the journal knew why.
    const { skipped } = output.detail;
    const left = skipped.length === 0 ? '' : `; left as they are: ${skipped.slice(0, 5).map((entry) => `${entry.path} (${entry.reason})`).join(', ')}${skipped.length > 5 ? `, and ${skipped.length - 5} more` : ''}`;
    return { ok: true, detail: `${output.detail.compressed} compressed, ${output.detail.deleted} deleted, nothing left to rotate${left}`, observed: { remaining: 0 } };
  },
};
