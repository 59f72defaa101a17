import { bytes, bytesExpr, count, duration, number, percent, secondsExpr } from './format.js';
import type { RuleContext, RuleGroup } from './types.js';

const TARGET = 'on (job, instance, target)';

export function redisRules({ thresholds: { redis }, series }: RuleContext): RuleGroup {
  return {
    name: 'upkeep-redis',
    rules: [
      {
        alert: 'RedisFragmentationHigh',
        why: "The runbook's threshold is 1.5. Below 100 MiB used the ratio is dominated by allocator\noverhead and means nothing (Redis's own active-defrag-ignore-bytes is 100mb).",
        expr: [
          `${series('upkeep_redis_mem_fragmentation_ratio')} > ${redis.fragmentationRatio}`,
          `and ${TARGET}`,
          `${series('upkeep_redis_memory_used_bytes')} > ${bytesExpr(redis.fragmentationMinMemory)}`,
        ].join('\n'),
        forSeconds: 1800,
        severity: 'warning',
        summary: `Redis memory fragmentation is over ${number(redis.fragmentationRatio)}.`,
        description: `Redis {{ $labels.target }} has a memory fragmentation ratio of {{ $value | printf "%.2f" }} (threshold ${number(redis.fragmentationRatio)}, ignored below ${bytes(redis.fragmentationMinMemory)} used).`,
      },
      {
        alert: 'RedisBgsaveFailed',
        why: 'With stop-writes-on-bgsave-error (the default) Redis refuses writes after a failed save.',
        expr: `${series('upkeep_redis_rdb_last_bgsave_success')} == 0`,
        forSeconds: 120,
        severity: 'critical',
        summary: 'The last Redis background save failed.',
        description: 'The last BGSAVE of Redis {{ $labels.target }} failed; with stop-writes-on-bgsave-error set, Redis refuses writes until a save succeeds.',
      },
      {
        alert: 'RedisNoRecentSave',
        why: [
          "Redis's default save policy writes within an hour of any change; 6 hours (the default) with",
          "unsaved changes means persistence is off or stuck. A failing BGSAVE is RedisBgsaveFailed's job",
          '(another BGSAVE would fail the same way), so it is excluded here.',
        ].join('\n'),
        expr: [
          '(',
          `  time() - ${series('upkeep_redis_rdb_last_save_timestamp_seconds')} > ${secondsExpr(redis.noSaveFor)}`,
          `  and ${TARGET}`,
          `  ${series('upkeep_redis_rdb_changes_since_last_save')} > 0`,
          ')',
          `unless ${TARGET}`,
          `${series('upkeep_redis_rdb_last_bgsave_success')} == 0`,
        ].join('\n'),
        forSeconds: 900,
        severity: 'warning',
        summary: `Redis has unsaved changes and has not saved in over ${duration(redis.noSaveFor)}.`,
        description: `Redis {{ $labels.target }} last saved {{ $value | humanizeDuration }} ago and has unsaved changes (threshold ${duration(redis.noSaveFor)}).`,
      },
      {
        alert: 'RedisKeyPatternBacklog',
        why: "Celery's result keys (celery-task-meta-*) pile up when result_expires is unset or long.",
        expr: `${series('upkeep_redis_pattern_keys')} > ${redis.keyPatternBacklog}`,
        forSeconds: 3600,
        severity: 'warning',
        summary: `Over ${count(redis.keyPatternBacklog)} Redis keys match a watched pattern.`,
        description: `Redis {{ $labels.target }} holds {{ $value | humanize }} keys matching {{ $labels.pattern }} (threshold ${count(redis.keyPatternBacklog)}).`,
      },
    ],
  };
}
