import { bytes, bytesExpr, count, duration, number, percent, secondsExpr } from './format.js';
import type { RuleContext, RuleGroup } from './types.js';

const TARGET = 'on (job, instance, target)';

export function redisRules({ thresholds: { redis }, series }: RuleContext): RuleGroup {
  const aofEnabled = `${series('upkeep_redis_aof_enabled')} == 1`;
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
      {
        alert: 'RedisMemoryNearLimit',
        why: [
          'Only where maxmemory is set (0 means no limit), and not under an allkeys-* policy: a cache',
          'that evicts any key is meant to sit at its limit. Under noeviction writes fail there;',
          'under volatile-* only keys with a TTL can go.',
        ].join('\n'),
        expr: [
          `${series('upkeep_redis_memory_used_bytes')} / (${series('upkeep_redis_memory_max_bytes')} > 0) > ${redis.memoryRatio}`,
          `unless ${TARGET}`,
          series('upkeep_redis_maxmemory_policy_info', 'policy=~"allkeys-.*"'),
        ].join('\n'),
        forSeconds: 900,
        severity: 'warning',
        summary: `Redis uses more than ${percent(redis.memoryRatio)} of its maxmemory.`,
        description: `Redis {{ $labels.target }} uses {{ $value | humanizePercentage }} of its maxmemory (threshold ${percent(redis.memoryRatio)}) and its eviction policy does not evict every key: at the limit writes are refused or keys without a TTL stay while the others go.`,
      },
      {
        alert: 'RedisAofWriteFailed',
        why: 'After a failed AOF write Redis refuses writes (MISCONF) until one succeeds.',
        expr: `${series('upkeep_redis_aof_last_write_success')} == 0\nand ${TARGET}\n${aofEnabled}`,
        forSeconds: 120,
        severity: 'critical',
        summary: 'Redis failed to write its append-only file.',
        description: 'The last write of the append-only file of Redis {{ $labels.target }} failed (disk full or read-only?); Redis refuses writes until a write succeeds.',
      },
      {
        alert: 'RedisAofRewriteFailed',
        expr: `${series('upkeep_redis_aof_last_rewrite_success')} == 0\nand ${TARGET}\n${aofEnabled}`,
        forSeconds: 600,
        severity: 'warning',
        summary: 'The last Redis append-only file rewrite failed.',
        description: 'The last BGREWRITEAOF of Redis {{ $labels.target }} failed; the append-only file keeps growing and a restart replays all of it.',
      },
      {
        alert: 'RedisReplicaLinkDown',
        expr: `${series('upkeep_redis_master_link_up')} == 0\nand ${TARGET}\n${series('upkeep_redis_replica')} == 1`,
        forSeconds: 300,
        severity: 'critical',
        summary: 'A Redis replica has lost its link to the primary.',
        description: 'Redis replica {{ $labels.target }} on {{ $labels.instance }} is not connected to its primary: it serves stale data, and a failover to it would lose what it missed.',
      },
    ],
  };
}
