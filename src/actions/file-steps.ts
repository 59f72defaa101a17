import { relative } from 'node:path';
import { z } from 'zod';
import type { FileStep, Skipped, StepOutcome } from '../systems/files/sweep.js';
import type { PlanStep } from './contract.js';

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

export function counts(steps: readonly FileStep[]): { compress: number; delete: number } {
  return { compress: steps.filter((step) => step.op === 'compress').length, delete: steps.filter((step) => step.op === 'delete').length };
}

/** After a run, nothing should be left to do except what the run had to skip. */
export function remainingAfter(steps: readonly FileStep[], root: string, output: Record<string, unknown>): string[] {
  const skipped = new Set(z.array(z.object({ path: z.string() })).parse(output.skipped ?? []).map((entry) => entry.path));
  return steps.map((step) => relative(root, step.file.path)).filter((path) => !skipped.has(path));
}
