import { z } from 'zod';
import { parseDurationSeconds } from '../config/duration.js';

// The thresholds file (`upkeep rules --thresholds FILE`): the job selector, the runbook base URL
// and every number the alert rules compare with. Each key has the shipped default, so a file
// names only what a team changes; every object is strict, so a typo is an error, never a
// silently ignored threshold.

const ratio = z.number({ error: 'must be a number such as 1.5' }).positive();
const fraction = z.number({ error: 'must be a number such as 0.8 (for 80%)' }).positive().lt(1, 'must be below 1');
const positiveInt = z.number({ error: 'must be a whole number' }).int().positive();
const duration = z.string({ error: 'must be a duration such as "26h", "10m" or "35 days"' })
  .refine((text) => parseDurationSeconds(text) !== null, 'must be a duration such as "26h", "10m" or "35 days"')
  .transform((text) => parseDurationSeconds(text) ?? 0);
const positiveDuration = duration.refine((seconds) => seconds > 0, 'must be longer than 0s');

const SIZE_UNITS: Readonly<Record<string, number>> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4, kB: 1e3, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 };
function parseSize(text: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*$/.exec(text);
  const unit = match ? SIZE_UNITS[match[2] ?? ''] : undefined;
  return match && unit !== undefined ? Math.round(Number(match[1]) * unit) : null;
}
/** Bytes, as a number or as "10 GiB", "512 MiB", "2 GB". */
const size = z.union([
  z.number().int().positive(),
  z.string().refine((text) => (parseSize(text) ?? 0) > 0, 'must be a size such as "10 GiB" or "512 MiB", or a number of bytes')
    .transform((text) => parseSize(text) ?? 0),
], { error: 'must be a size such as "10 GiB" or "512 MiB", or a number of bytes' });

const LABEL_MATCHER = String.raw`\s*[A-Za-z_][A-Za-z0-9_]*\s*(?:=~|!~|!=|=)\s*"(?:[^"\\\n]|\\.)*"\s*`;
const MATCHERS = new RegExp(`^${LABEL_MATCHER}(?:,${LABEL_MATCHER})*$`);
/** PromQL label matchers, e.g. `job="upkeep"` or `job=~"upkeep|upkeep-staging", env="prod"`. */
const selector = z.string()
  .regex(MATCHERS, 'must be PromQL label matchers such as job="upkeep" (label, =, !=, =~ or !~, a double-quoted value; several separated by commas)')
  .transform((text) => [...text.matchAll(new RegExp(`(${LABEL_MATCHER})(?:,|$)`, 'g'))].map((match) => (match[1] ?? '').trim().replace(/\s*(=~|!~|!=|=)\s*/, '$1')).join(','));

const runbookBaseUrl = z.string()
  .refine((text) => /^https?:\/\//.test(text) && URL.canParse(text), 'must be an http:// or https:// URL')
  // An annotation is a Go template: `{{` in the URL made every rule one Prometheus refuses.
  .refine((text) => !text.includes('{{') && !text.includes('}}'), 'must not hold {{ or }} (Prometheus reads annotations as templates)')
  .transform((text) => (text.endsWith('/') ? text : `${text}/`));

export const thresholdsSchema = z.strictObject({
  selector: selector.prefault('job="upkeep"'),
  runbookBaseUrl: runbookBaseUrl.prefault('https://github.com/upkeep-dev/upkeep/blob/main/docs/runbooks/'),
  disk: z.strictObject({
    usedRatio: fraction.default(0.8),
    fillMinUsedRatio: fraction.default(0.5),
    inodesFreeRatio: fraction.default(0.1),
  }).prefault({}),
  backups: z.strictObject({
    maxAge: positiveDuration.prefault('26h'),
    verifyMaxAge: positiveDuration.prefault('35 days'),
  }).prefault({}),
  postgres: z.strictObject({
    deadTuples: positiveInt.default(10000),
    deadTuplesRatio: fraction.default(0.2),
    notVacuumedFor: positiveDuration.prefault('8 days'),
    notVacuumedDeadTuples: positiveInt.default(1000),
    freezeMaxAgeRatio: ratio.default(1.1),
    wraparoundRatio: fraction.default(0.5),
    longTransaction: positiveDuration.prefault('1h'),
    idleInTransaction: positiveDuration.prefault('10m'),
    horizonXminAge: positiveInt.default(10_000_000),
    slotRetainedWal: size.prefault('10 GiB'),
    connectionsRatio: fraction.default(0.8),
    replicationLag: positiveDuration.prefault('5m'),
  }).prefault({}),
  redis: z.strictObject({
    fragmentationRatio: ratio.default(1.5),
    fragmentationMinMemory: size.prefault('100 MiB'),
    noSaveFor: positiveDuration.prefault('6h'),
    keyPatternBacklog: positiveInt.default(100000),
    memoryRatio: fraction.default(0.9),
  }).prefault({}),
  docker: z.strictObject({
    containerLogSize: size.prefault('1 GiB'),
    reclaimable: size.prefault('10 GiB'),
  }).prefault({}),
  upkeep: z.strictObject({
    targetAbsentLookback: positiveDuration.prefault('1 day'),
    scheduleLate: positiveDuration.prefault('10m'),
    cacheStaleFactor: ratio.default(3),
    // The `reading` label of upkeep_collector_cache_age_seconds; `sizes` stands for every `sizes:<database>`,
    // `xid_ages` for every `xid_ages:<database>`.
    // The defaults are the config's default refresh intervals: change one here when you change it there.
    cacheRefresh: z.strictObject({
      sizes: positiveDuration.prefault('5m'),
      xid_ages: positiveDuration.prefault('60s'),
      pattern_keys: positiveDuration.prefault('60s'),
      disk_usage: positiveDuration.prefault('5m'),
      container_logs: positiveDuration.prefault('60s'),
      log_dir: positiveDuration.prefault('60s'),
    }).prefault({}),
  }).prefault({}),
  // How long each alert's condition must hold before it fires, by alert name (`for:`).
  for: z.record(z.string(), duration).default({}),
});

export type Thresholds = z.output<typeof thresholdsSchema>;

/** The shipped defaults: what renders the committed alerts/*.rules.yml. */
export const DEFAULT_THRESHOLDS: Thresholds = thresholdsSchema.parse({});
