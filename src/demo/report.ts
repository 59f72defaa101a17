/** What the demo watches: one row per injected problem, read from upkeep's own /metrics. */
export interface Problem {
  readonly name: string;
  readonly series: string;
  readonly alert: string;
  readonly remediation: string;
  /** The value shown in the table (e.g. an age instead of a timestamp). */
  view(raw: number | undefined, nowSeconds: number): number | undefined;
  /** Is this value healthy again? */
  fixed(value: number | undefined): boolean;
  format(value: number | undefined): string;
}

const count = (value: number | undefined) => (value === undefined ? 'n/a' : Math.round(value).toLocaleString('en-US'));
const hours = (value: number | undefined) => (value === undefined ? 'n/a' : `${(value / 3600).toFixed(1)} h`);
const mebibytes = (value: number | undefined) => (value === undefined ? 'n/a' : `${(value / 1048576).toFixed(1)} MiB`);
const identity = (raw: number | undefined) => raw;

export const PROBLEMS: readonly Problem[] = [
  {
    name: 'dead tuples in refnet.public.job_logs',
    series: 'upkeep_postgres_dead_tuples{target="main",database="refnet",schema="public",table="job_logs"}',
    alert: 'PostgresDeadTuplesHigh', remediation: 'postgres.vacuum',
    view: identity, fixed: (v) => v !== undefined && v <= 10_000, format: count,
  },
  {
    name: 'age of the newest refnet backup',
    series: 'upkeep_backup_last_success_timestamp_seconds{backup="refnet"}',
    alert: 'BackupTooOld', remediation: 'backup.pg_dump',
    view: (raw, now) => (raw === undefined ? undefined : now - raw), fixed: (v) => v !== undefined && v < 26 * 3600, format: hours,
  },
  {
    name: 'celery-task-meta-* keys in Redis',
    series: 'upkeep_redis_pattern_keys{target="cache",pattern="celery-task-meta-*"}',
    alert: 'RedisKeyPatternBacklog', remediation: 'redis.expire_keys',
    // Below the alert threshold is not enough: the cleanup removes every key without a TTL.
    view: identity, fixed: (v) => v === 0, format: count,
  },
  {
    name: 'last Redis BGSAVE succeeded (1 = yes)',
    series: 'upkeep_redis_rdb_last_bgsave_success{target="cache"}',
    alert: 'RedisBgsaveFailed', remediation: 'redis.bgsave',
    view: identity, fixed: (v) => v === 1, format: count,
  },
  {
    name: 'application log directory size',
    series: 'upkeep_log_dir_bytes{name="app"}',
    alert: '(schedule: every 10 s)', remediation: 'logs.rotate',
    view: identity, fixed: (v) => v !== undefined && v < 5 * 1048576, format: mebibytes,
  },
];

/** The value of one exact series in exposition text. */
export function sampleValue(text: string, series: string): number | undefined {
  const prefix = `${series} `;
  const line = text.split('\n').find((candidate) => candidate.startsWith(prefix));
  return line === undefined ? undefined : Number(line.slice(prefix.length));
}

export function readProblems(metricsText: string, nowSeconds: number): (number | undefined)[] {
  return PROBLEMS.map((problem) => problem.view(sampleValue(metricsText, problem.series), nowSeconds));
}

/** A plain-text table; the widest cell sets each column's width. */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ').trimEnd();
  return [line(header), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.map(line)].join('\n');
}
