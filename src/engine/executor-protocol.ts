import { z } from 'zod';
import { checkResultSchema, planStepSchema, TRIGGERS } from '../actions/contract.js';
import { stepErrorSchema } from './step-errors.js';

// The messages between the engine and its executor thread (executor-thread.ts, executor-worker.ts).

export const STEPS = ['dryRun', 'resolve', 'check', 'plan', 'run', 'verify', 'close'] as const;

export const toThreadSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('open'), runId: z.string(), remediation: z.string(), dryRun: z.boolean(), deadline: z.number(), trigger: z.enum(TRIGGERS) }),
  z.object({ type: z.literal('call'), runId: z.string(), callId: z.number(), step: z.enum(STEPS), args: z.array(z.unknown()) }),
  // The run's signal was aborted: at shutdown the run is interrupted, at its deadline it fails.
  z.object({ type: z.literal('abort'), runId: z.string(), shutdown: z.boolean(), message: z.string() }),
  // No run is open: the thread ends its shared connections and exits.
  z.object({ type: z.literal('exit') }),
]);
export type ToThread = z.infer<typeof toThreadSchema>;

export const fromThreadSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('result'), callId: z.number(), value: z.unknown() }),
  z.object({ type: z.literal('failed'), callId: z.number(), error: stepErrorSchema }),
  // One log line of a run, as the thread's logger wrote it (JSON, already redacted).
  z.object({ type: z.literal('log'), line: z.string() }),
  z.object({ type: z.literal('progress'), runId: z.string(), detail: z.record(z.string(), z.unknown()) }),
]);
export type FromThread = z.infer<typeof fromThreadSchema>;

/** What the thread is started with: the engine's config, already validated, and its log level. */
export const threadDataSchema = z.object({ config: z.record(z.string(), z.unknown()), level: z.string() });

// A step's answer as it comes back: checked against the contract's shapes before the pipeline uses it.
export const planSchema = z.object({ steps: z.array(planStepSchema), payload: z.unknown() });
export const runOutputSchema = z.object({ detail: z.record(z.string(), z.unknown()) });
export const dryRunSchema = z.object({ params: z.unknown(), check: checkResultSchema, plan: planSchema });
