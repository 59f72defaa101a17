import { relative } from 'node:path';
import { applySteps, emptyOutcome, type FileStep, type Skipped, type StepOutcome } from '../systems/files/sweep.js';
import { PartialWork, type Plan, type PlanStep } from './contract.js';

// What logs.rotate and files.cleanup share: how their steps are shown, counted and checked after.
const MAX_PLAN_STEPS = 500;
const MAX_LISTED = 200;

export function describeSteps(steps: readonly FileStep[]): PlanStep[] {
  const described: PlanStep[] = steps.slice(0, MAX_PLAN_STEPS).map((step) => ({
    kind: 'file',
    detail: step.op === 'compress' ? `gzip ${step.file.path} -> ${step.file.path}.gz (mtime kept), then unlink ${step.file.path}` : `unlink ${step.file.path}`,
  }));
  if (steps.length > MAX_PLAN_STEPS) described.push({ kind: 'file', detail: `... and ${steps.length - MAX_PLAN_STEPS} more files` });
  return described;
}

/** What run() carries out: the steps as listed when planned, each file checked again just before it is touched. */
export interface SweepPayload {
  readonly root: string;
  readonly steps: readonly FileStep[];
  /** Found but never touched (symlinks, paths resolving outside root), reported with the outcome. */
  readonly skipped: readonly Skipped[];
}

export type SweepOutput = {
  compressed: number;
  deleted: number;
  freedBytes: number;
  files: { compressed: string[]; deleted: string[] };
  skipped: Skipped[];
};

export function sweepPlan(found: { root: string; skipped: readonly Skipped[] }, steps: readonly FileStep[]): Plan<SweepPayload> {
  return { steps: describeSteps(steps), payload: { root: found.root, steps, skipped: found.skipped } };
}

/**
 * Carries out the planned steps and summarises them for the journal. A sweep stopped part-way
 * throws PartialWork: the files it had already compressed or deleted stay so, and the journal
 * lists them.
 */
export async function runSweep(payload: SweepPayload, signal: AbortSignal): Promise<SweepOutput> {
  const outcome = emptyOutcome();
  try {
    await applySteps(payload.root, payload.steps, signal, outcome);
  } catch (err) {
    throw new PartialWork(err, summarize(outcome, payload.skipped));
  }
  return summarize(outcome, payload.skipped);
}

function summarize(outcome: StepOutcome, skippedBeforehand: readonly Skipped[]): SweepOutput {
  const skipped = [...skippedBeforehand, ...outcome.skipped];
  return {
    compressed: outcome.compressed.length,
    deleted: outcome.deleted.length,
    freedBytes: outcome.freedBytes,
    files: { compressed: outcome.compressed.slice(0, MAX_LISTED), deleted: outcome.deleted.slice(0, MAX_LISTED) },
    skipped: skipped.slice(0, MAX_LISTED),
  };
}

export function counts(steps: readonly FileStep[]): { compress: number; delete: number } {
  return { compress: steps.filter((step) => step.op === 'compress').length, delete: steps.filter((step) => step.op === 'delete').length };
}

/** After a run, nothing should be left to do except what the run had to skip. */
export function remainingAfter(steps: readonly FileStep[], root: string, output: SweepOutput): string[] {
  const skipped = new Set(output.skipped.map((entry) => entry.path));
  return steps.map((step) => relative(root, step.file.path)).filter((path) => !skipped.has(path));
}
