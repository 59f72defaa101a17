import { duration, number, promDuration, secondsExpr } from './format.js';
import type { RuleContext, RuleGroup } from './types.js';

const TARGETS_DOWN = (series: RuleContext['series']) => [
  `label_replace(${series('upkeep_postgres_up')}, "collector", "postgres", "", "") == 0`,
  `or label_replace(${series('upkeep_redis_up')}, "collector", "redis", "", "") == 0`,
  `or label_replace(${series('upkeep_docker_up')}, "collector", "docker", "", "") == 0`,
];

export function selfRules({ thresholds: { upkeep, selector }, series }: RuleContext): RuleGroup {
  const collectorUp = series('upkeep_collector_up');
  return {
    name: 'upkeep-self',
    rules: [
      {
        alert: 'UpkeepDown',
        why: "Without upkeep's metrics every other alert here goes silent; this one does not.",
        expr: `up{${selector}} == 0`,
        forSeconds: 300,
        severity: 'critical',
        summary: 'Prometheus cannot scrape upkeep.',
        description: 'Prometheus fails to scrape upkeep at {{ $labels.instance }}; no maintenance alert or remediation can work.',
      },
      {
        alert: 'UpkeepAbsent',
        why: 'UpkeepDown needs an `up` series to be 0; when service discovery loses upkeep or its job is\nrenamed there is none, and only absent() notices.',
        expr: `absent(up{${selector}})`,
        forSeconds: 600,
        severity: 'critical',
        summary: 'Prometheus has no upkeep target to scrape.',
        description: `Prometheus has no scrape target matching up{${selector}}{{ with $labels.job }} (job {{ . }}){{ end }}: upkeep was removed from service discovery or its job renamed, so every maintenance alert is silent.`,
      },
      {
        alert: 'UpkeepTargetAbsent',
        why: [
          'absent() for every configured target, without listing them: a collector and target upkeep',
          `reported within the lookback (1 day by default) and no longer reports, on any instance (a`,
          'target moving between replicas is not absent). While no upkeep is up, UpkeepDown and',
          'UpkeepAbsent speak instead.',
        ].join('\n'),
        expr: [
          `group by (job, collector, target) (max_over_time(${collectorUp}[${promDuration(upkeep.targetAbsentLookback)}]))`,
          `unless on (job, collector, target) ${collectorUp}`,
          `and on (job) (up{${selector}} == 1)`,
        ].join('\n'),
        forSeconds: 600,
        severity: 'critical',
        summary: 'upkeep stopped reporting a target it reported before.',
        description: `upkeep no longer reports {{ $labels.collector }} target {{ $labels.target }}, which it reported less than ${duration(upkeep.targetAbsentLookback)} ago: nothing watches it now and no alert about it can fire.`,
      },
      {
        alert: 'UpkeepTargetDown',
        expr: TARGETS_DOWN(series).join('\n'),
        forSeconds: 300,
        severity: 'critical',
        summary: 'upkeep cannot reach a PostgreSQL, Redis or Docker target.',
        description: 'upkeep cannot reach {{ $labels.collector }} target {{ $labels.target }}; its metrics are missing and remediations against it cannot run.',
      },
      {
        alert: 'UpkeepCollectorDown',
        why: "A collector failing because its server is down is UpkeepTargetDown's job, and a failing\nhealth probe is ServiceDown's: one cause, one alert.",
        expr: [
          `${series('upkeep_collector_up', 'collector!="http"')} == 0`,
          'unless on (job, instance, collector, target)',
          '(',
          ...TARGETS_DOWN(series).map((line) => `  ${line}`),
          ')',
        ].join('\n'),
        forSeconds: 600,
        severity: 'warning',
        summary: 'An upkeep collector keeps failing.',
        description: 'The {{ $labels.collector }} collector for {{ $labels.target }} keeps failing or timing out; its readings are missing.',
      },
      {
        alert: 'UpkeepCacheStale',
        why: [
          `A cached reading older than ${number(upkeep.cacheStaleFactor)} times its refresh interval: the refresh keeps failing and`,
          'the last value is served. Readings are grouped by their interval (thresholds upkeep.cacheRefresh).',
        ].join('\n'),
        expr: cacheArms(upkeep, series).join('\nor\n'),
        forSeconds: 900,
        severity: 'warning',
        summary: 'A cached reading is not being refreshed.',
        description: `The {{ $labels.reading }} reading of {{ $labels.collector }} target {{ $labels.target }} is {{ $value | humanizeDuration }} old, more than ${number(upkeep.cacheStaleFactor)} times its refresh interval; dashboards and alerts see old values.`,
      },
    ],
  };
}

// Readings a postgres target keeps per database, labelled `<reading>:<database>`.
const PER_DATABASE = new Set(['sizes', 'xid_ages']);

/** One comparison per refresh interval, over the readings that share it. */
function cacheArms(upkeep: RuleContext['thresholds']['upkeep'], series: RuleContext['series']): string[] {
  const byInterval = new Map<number, string[]>();
  for (const [reading, seconds] of Object.entries(upkeep.cacheRefresh)) {
    byInterval.set(seconds, [...(byInterval.get(seconds) ?? []), PER_DATABASE.has(reading) ? `${reading}:.*` : reading]);
  }
  return [...byInterval].map(([seconds, readings]) =>
    `${series('upkeep_collector_cache_age_seconds', `reading=~"${readings.join('|')}"`)} > ${number(upkeep.cacheStaleFactor)} * ${secondsExpr(seconds)}`);
}
