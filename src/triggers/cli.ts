import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { Engine } from '../engine/engine.js';
import type { RunRecord } from '../engine/journal.js';

export interface CliRun {
  remediation: string;
  /** From `--param k=v` (see parseParams). */
  params: Readonly<Record<string, string>>;
  dryRun: boolean;
}

/**
 * Parses `--param k=v` pairs; the first "=" splits, so values may contain "=". A key given twice
 * is refused rather than the last one winning: `--param keepDays=30 ... --param keepDays=3` in a
 * script would otherwise delete what its first line meant to keep.
 */
export function parseParams(pairs: readonly string[]): Record<string, string> {
  const params = new Map<string, string>();
  for (const pair of pairs) {
    const split = pair.indexOf('=');
    if (split <= 0) throw new Error(`--param "${pair}" must look like key=value`);
    const key = pair.slice(0, split);
    if (params.has(key)) throw new Error(`--param "${key}" is given twice; give each key once`);
    params.set(key, pair.slice(split + 1));
  }
  return Object.fromEntries(params);
}

/**
 * Control characters written as escapes: a file named with a newline printed raw made one plan
 * step look like two (the journal's JSON was never ambiguous).
 */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f]/g, (char) => JSON.stringify(char).slice(1, -1));
}

export function formatRun(record: RunRecord): string[] {
  const lines = [`run ${record.id}: ${record.remediation} (${record.trigger}${record.dryRun ? ', dry run' : ''})`];
  if (record.plan && record.plan.length > 0) lines.push('plan:', ...record.plan.map((step) => `  ${step.kind}: ${printable(step.detail)}`));
  if (typeof record.progress?.summary === 'string') lines.push(`progress: ${printable(record.progress.summary)}`);
  lines.push(`status: ${record.status}`);
  if (record.reason) lines.push(`reason: ${printable(record.reason)}`);
  if (record.verification) lines.push(`verification: ${record.verification.ok ? 'ok' : 'FAILED'}: ${printable(record.verification.detail)}`);
  if (record.error) lines.push(`error: ${printable(record.error)}`);
  // What a run that stopped part-way had done (rows deleted, keys unlinked) was only in the journal.
  if (record.output && record.status !== 'success' && record.status !== 'dry_run') lines.push(`done before it stopped: ${JSON.stringify(record.output)}`);
  return lines;
}

/** Success, dry run and a skip are fine (exit 0); anything else exits 1. */
export function exitCodeFor(record: RunRecord): number {
  return record.status === 'success' || record.status === 'dry_run' || record.status === 'skipped' ? 0 : 1;
}

/**
 * `upkeep run`: one run through the same engine, guards and journal as the server. Its steps run
 * inline: the executor thread keeps a server's acknowledgements from waiting behind runs, and
 * this process serves nothing while it waits for its one run, so a second heap would only cost
 * memory (about 20 MB).
 */
export async function runFromCli(config: Readonly<Config>, log: Logger, run: CliRun, out: (line: string) => void, signals: NodeJS.EventEmitter = process): Promise<number> {
  const engine = await Engine.create({ config: { ...config, remediation: { ...config.remediation, executor: 'inline' } }, log });
  // Ctrl-C or a kill: node's default ended the process at once, leaving the run `running` in the
  // journal and a half-written backup behind. The run is stopped as a shutdown stops it (a
  // statement cancelled, pg_dump ended, the partial file removed), journalled `interrupted` and
  // printed; a second signal exits at once. SIGHUP, a closed terminal, lets the run go on to its
  // end in the journal: node resets the SIG_IGN that `nohup` sets, so without this `nohup upkeep
  // run backup.pg_dump` over ssh died with the connection.
  let stopping: Promise<void> | null = null;
  const onHangUp = () => log.warn({ signal: 'SIGHUP' }, 'SIGHUP ignored: the run goes on; its outcome is journalled (GET /runs)');
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, 'stopped again: exiting without waiting for the run');
      process.exit(1);
    }
    log.warn({ signal }, 'stopping the run (send the signal again to exit at once)');
    stopping = engine.close(0, `upkeep run was stopped by ${signal}`);
  };
  for (const signal of STOP_SIGNALS) signals.on(signal, onSignal);
  signals.on('SIGHUP', onHangUp);
  try {
    const { done } = engine.submit({ remediation: run.remediation, params: run.params, trigger: 'cli', dryRun: run.dryRun });
    const record = await done;
    for (const line of formatRun(record)) out(line);
    return exitCodeFor(record);
  } finally {
    for (const signal of STOP_SIGNALS) signals.off(signal, onSignal);
    signals.off('SIGHUP', onHangUp);
    await (stopping ?? engine.close());
  }
}

const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
