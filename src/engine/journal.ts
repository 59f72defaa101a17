import { z } from 'zod';
import type { RunStatus, Trigger } from '../actions/contract.js';

/**
 * A journal line: one state of a run (queued, running, planned, finished), as the state store
 * keeps it and GET /runs answers it. Every line read back is parsed with this schema.
 */
const step = z.object({ kind: z.enum(['sql', 'redis', 'docker', 'file', 'exec']), detail: z.string() });
const json = z.record(z.string(), z.unknown());
const alert = z.object({ fingerprint: z.string(), startsAt: z.string(), alertname: z.string(), labels: z.record(z.string(), z.string()) });
const triggers = ['alert', 'manual', 'schedule', 'cli'] as const;
const statuses = ['queued', 'running', 'success', 'failure', 'skipped', 'dry_run', 'interrupted', 'duplicate', 'cancelled', 'rejected'] as const;

export const runRecordSchema = z.object({
  id: z.string(),
  remediation: z.string(),
  trigger: z.enum(triggers),
  status: z.enum(statuses),
  params: json,
  reason: z.string().optional(),
  alert: alert.optional(),
  plan: z.array(step).optional(),
  output: json.optional(),
  verification: z.object({ ok: z.boolean(), detail: z.string(), observed: json.optional() }).optional(),
  error: z.string().optional(),
  queuedAt: z.string(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
  dryRun: z.boolean().optional(),
  risk: z.enum(['safe', 'disruptive', 'destructive']).optional(),
  source: z.string().optional(),
  check: z.object({ proceed: z.boolean(), reason: z.string(), observed: json.optional() }).optional(),
  skipCode: z.enum(['condition', 'lock', 'cooldown', 'circuit', 'risk', 'window']).optional(),
  duplicateOf: z.string().optional(),
  lockKey: z.string().optional(),
  silenceId: z.string().optional(),
  host: z.string().optional(),
  pid: z.number().optional(),
});

const UNFINISHED: ReadonlySet<RunStatus> = new Set(['queued', 'running']);

export function isFinished(status: RunStatus): boolean {
  return !UNFINISHED.has(status);
}

export const RUN_STATUSES: readonly RunStatus[] = statuses;
export const TRIGGERS: readonly Trigger[] = triggers;
