/**
 * The goals of issue 13, each measured by one bench. A bench records what it measured (upkeep's
 * figure and the peer's from the same run) into the file named by UPKEEP_BENCH_RESULTS, one JSON
 * line per goal; `npm run bench` ends with bench/summary.ts, which prints every goal, and
 * NOT MEASURED for a goal no bench recorded in that run (never a figure from elsewhere).
 */
import { appendFile } from 'node:fs/promises';
import { loadavg } from 'node:os';

export interface GoalSpec {
  readonly id: string;
  readonly goal: string;
  readonly unit: string;
  /** The peer the figure is compared with, e.g. "postgres_exporter". */
  readonly peer: string;
}

export const GOALS: readonly GoalSpec[] = [
  { id: 'memory-peak', goal: 'peak RSS at 10,200 tables, default node flags <= 100 MB (first step 130 MB)', unit: 'MB', peer: 'postgres_exporter' },
  { id: 'memory-idle', goal: 'idle RSS, examples/minimal.yml <= 60 MB', unit: 'MB', peer: 'postgres_exporter idle' },
  { id: 'scrape-postgres', goal: 'PostgreSQL scrape p50 <= 0.10x postgres_exporter, 10,200 tables', unit: 'ms', peer: 'postgres_exporter' },
  { id: 'scrape-redis', goal: 'Redis scrape p50 with pattern counts <= 0.01x redis_exporter', unit: 'ms', peer: 'redis_exporter' },
  { id: 'growth', goal: 'scrape time and peak RSS grow at most linearly (1k/10k/50k tables, 1/10/50 databases), flat past tables.limit', unit: '', peer: '' },
  { id: 'webhook-ack', goal: 'webhook ack p99 <= 5 ms at 1,000 alerts/s open loop (first step 10 ms at 500/s)', unit: 'ms', peer: 'HTTP alone (no rule matches)' },
  { id: 'webhook-lost', goal: 'webhook: zero accepted alerts lost', unit: 'runs', peer: '' },
  { id: 'webhook-drain', goal: 'queue drains >= 1,000 dry runs/s', unit: 'runs/s', peer: '' },
  { id: 'journal-page', goal: 'GET /runs p99 <= 20 ms with 1,000,000 runs', unit: 'ms', peer: '' },
  { id: 'journal-start', goal: 'start-up with 1,000,000 runs <= 2 s', unit: 's', peer: '' },
  { id: 'backup', goal: 'backup.pg_dump <= 1.0x the runbook pg_dump | gzip on 1 GB', unit: 's', peer: 'pg_dump | gzip' },
  // The issue sets no ratio for jobs ("measured against pg_dump -Fd -j N side by side"); both sides
  // run the same pg_dump, so the goal is parity: see PARITY in bench/backup-jobs.ts.
  { id: 'backup-jobs', goal: 'backup.pg_dump jobs N at parity with pg_dump -Fd -j N (<= 1.05x)', unit: 's', peer: 'pg_dump -Fd -j N' },
];

export interface GoalResult {
  readonly id: string;
  readonly upkeep: number;
  readonly peer: number | null;
  /** upkeep / peer where the goal is a ratio, else null. */
  readonly ratio: number | null;
  readonly met: boolean;
  readonly note: string;
  readonly load: string;
}

export function loadAverage(): string {
  return loadavg().map((load) => load.toFixed(2)).join(' ');
}

/** Records one goal's outcome for the summary; a no-op when the bench runs on its own. */
export async function recordGoal(result: Omit<GoalResult, 'load'>): Promise<void> {
  const file = process.env.UPKEEP_BENCH_RESULTS;
  if (!file) return;
  if (!GOALS.some((goal) => goal.id === result.id)) throw new Error(`unknown goal ${result.id}`);
  await appendFile(file, `${JSON.stringify({ ...result, load: loadAverage() })}\n`);
}
