import { z } from 'zod';
import { checkResultSchema, planStepSchema, RISKS, TRIGGERS, verifyResultSchema } from '../actions/contract.js';

/**
 * A journal line: one state of a run (queued, running, planned, finished), as the state store
 * keeps it and GET /runs answers it. Every line read back is parsed with this schema, and the
 * RunRecord type is inferred from it, so the two cannot drift apart.
 */
const json = z.record(z.string(), z.unknown());

export const RUN_STATUSES = ['queued', 'running', 'success', 'failure', 'skipped', 'dry_run', 'interrupted', 'duplicate', 'cancelled', 'rejected'] as const;
export type RunStatus = typeof RUN_STATUSES[number];
export const SKIP_CODES = ['condition', 'lock', 'cooldown', 'circuit', 'risk', 'window'] as const;
export type SkipCode = typeof SKIP_CODES[number];
export { TRIGGERS };

/** The alert that triggered a run, as Alertmanager identified it. */
export const alertRefSchema = z.object({ fingerprint: z.string(), startsAt: z.string(), alertname: z.string(), labels: z.record(z.string(), z.string()) });
export type AlertRef = Readonly<z.infer<typeof alertRefSchema>>;

export const runRecordSchema = z.object({
  id: z.string(),
  remediation: z.string(),
  trigger: z.enum(TRIGGERS),
  status: z.enum(RUN_STATUSES),
  params: json,
  reason: z.string().optional(),
  alert: alertRefSchema.optional(),
  plan: z.array(planStepSchema).optional(),
  /** What run() was handed: exactly the plan's payload (JSON), so a dry run shows what a real run executes. */
  payload: z.unknown().optional(),
  output: json.optional(),
  /** The latest progress a long run reported while it ran (postgres.vacuum: phase, heap blocks; `summary` is one line for people). */
  progress: json.optional(),
  verification: verifyResultSchema.optional(),
  error: z.string().optional(),
  queuedAt: z.string(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
  /** Whether this run was (or would have been) a dry run. */
  dryRun: z.boolean().optional(),
  /** The risk of this invocation, once its parameters were valid. */
  risk: z.enum(RISKS).optional(),
  /** The schedule entry or rule that produced the request. */
  source: z.string().optional(),
  /** What `check` observed just before acting. */
  check: checkResultSchema.optional(),
  /** Why a run was skipped, as a stable word: condition, lock, cooldown, circuit, risk, window. */
  skipCode: z.enum(SKIP_CODES).optional(),
  /** For a duplicate: the run that already handled this alert. */
  duplicateOf: z.string().optional(),
  /** The (remediation, target object) the run locked; cooldowns are kept per lock key. */
  lockKey: z.string().optional(),
  /** The Alertmanager silence held while the run went on. */
  silenceId: z.string().optional(),
  /** The process that owns the run, so a restart only marks its own dead runs interrupted. */
  host: z.string().optional(),
  pid: z.number().optional(),
  /**
   * What the owner reported after a peer had journalled the run interrupted (the owner stalled past
   * its lease): its outcome, kept beside the `interrupted` status, which it does not change.
   */
  late: z.object({
    status: z.enum(RUN_STATUSES),
    finishedAt: z.string().optional(),
    reason: z.string().optional(),
    error: z.string().optional(),
    output: json.optional(),
    verification: verifyResultSchema.optional(),
  }).optional(),
});
export type RunRecord = Readonly<z.infer<typeof runRecordSchema>>;

const UNFINISHED: ReadonlySet<RunStatus> = new Set(['queued', 'running']);

export function isFinished(status: RunStatus): boolean {
  return !UNFINISHED.has(status);
}
