import type { Engine, Submitted } from '../engine/engine.js';

/** A manual run as POST /remediations/:name asks for it. */
export interface ManualRun {
  readonly remediation: string;
  readonly params: Readonly<Record<string, unknown>>;
  readonly dryRun?: boolean | undefined;
  readonly timeoutSeconds?: number | undefined;
}

export type ManualOutcome =
  | { readonly unknown: string }
  | { readonly rejected: string }
  | { readonly submitted: Submitted };

/**
 * Submits a manual run. Unknown remediations, malformed params and names the config alone refuses
 * are answered at once, and nothing is queued or journalled; QueueFull is thrown through.
 */
export function submitManual(engine: Pick<Engine, 'action' | 'listActions' | 'screen' | 'submit'>, run: ManualRun): ManualOutcome {
  const action = engine.action(run.remediation);
  if (!action) {
    return { unknown: `unknown remediation "${run.remediation}"; GET /remediations lists them (${engine.listActions().map((known) => known.name).join(', ')})` };
  }
  const screened = engine.screen(action, run.params, 'manual');
  if ('reason' in screened) return { rejected: screened.reason };
  return {
    submitted: engine.submit({
      remediation: run.remediation, params: run.params, trigger: 'manual',
      ...(run.dryRun !== undefined ? { dryRun: run.dryRun } : {}),
      ...(run.timeoutSeconds !== undefined ? { timeoutSeconds: run.timeoutSeconds } : {}),
    }),
  };
}
