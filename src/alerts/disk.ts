import { percent } from './format.js';
import type { RuleContext, RuleGroup } from './types.js';

export function diskRules({ thresholds: { disk }, series }: RuleContext): RuleGroup {
  return {
    name: 'upkeep-disk',
    rules: [
      {
        alert: 'DiskUsageHigh',
        why: "The runbooks' daily check: df Use% over 80 (the default).",
        expr: `${series('upkeep_disk_used_ratio')} > ${disk.usedRatio}`,
        forSeconds: 600,
        severity: 'warning',
        summary: `A filesystem is more than ${percent(disk.usedRatio)} full.`,
        description: `{{ $labels.path }} on {{ $labels.instance }} is {{ $value | humanizePercentage }} full (threshold ${percent(disk.usedRatio)}).`,
      },
      {
        alert: 'DiskWillFillIn4Hours',
        why: 'Extrapolates the last hour. Ignores half-empty disks, where a burst of writes (a dump,\na docker build) would otherwise predict a fill that never comes.',
        expr: [
          `predict_linear(${series('upkeep_disk_avail_bytes')}[1h], 4 * 3600) < 0`,
          'and on (job, instance, path)',
          `${series('upkeep_disk_used_ratio')} > ${disk.fillMinUsedRatio}`,
        ].join('\n'),
        forSeconds: 1800,
        severity: 'critical',
        summary: 'A filesystem will be full within 4 hours at its current rate.',
        description: 'At the rate of the last hour, {{ $labels.path }} on {{ $labels.instance }} runs out of space within 4 hours.',
      },
      {
        alert: 'DiskInodesLow',
        why: 'A filesystem out of inodes refuses new files however much space is left (many small\nfiles: sessions, caches, mail). Filesystems that allocate inodes on demand report 0 total\nand are left out.',
        expr: `${series('upkeep_disk_inodes_free')} / (${series('upkeep_disk_inodes')} > 0) < ${disk.inodesFreeRatio}`,
        forSeconds: 600,
        severity: 'warning',
        summary: `A filesystem has less than ${percent(disk.inodesFreeRatio)} of its inodes free.`,
        description: `{{ $labels.path }} on {{ $labels.instance }} has {{ $value | humanizePercentage }} of its inodes free (threshold ${percent(disk.inodesFreeRatio)}); once none is left no file can be created.`,
      },
    ],
  };
}
