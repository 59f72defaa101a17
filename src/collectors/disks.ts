import { statfs } from 'node:fs/promises';
import { MOUNT_FAMILIES, mountReadings, readMount } from './disk-mounts.js';
import type { CollectorModule } from './framework/types.js';

/**
 * Matches df: "used" is blocks minus free blocks, and Use% divides it by what non-root users
 * can have (used + available), so the root-reserved blocks count as neither.
 */
export function diskUsage(stats: { bsize: number; blocks: number; bfree: number; bavail: number }) {
  const used = (stats.blocks - stats.bfree) * stats.bsize;
  const avail = stats.bavail * stats.bsize;
  return { sizeBytes: stats.blocks * stats.bsize, availBytes: avail, usedRatio: used + avail === 0 ? 0 : used / (used + avail) };
}

export const disks: CollectorModule = {
  name: 'disks',
  families: [
    { name: 'upkeep_disk_used_ratio', help: 'Used share of the filesystem as df reports it (used / (used + available to non-root)).', type: 'gauge', labelNames: ['path'] },
    { name: 'upkeep_disk_size_bytes', help: 'Total size of the filesystem.', type: 'gauge', labelNames: ['path'] },
    { name: 'upkeep_disk_avail_bytes', help: 'Bytes available to non-root users.', type: 'gauge', labelNames: ['path'] },
    ...MOUNT_FAMILIES,
  ],
  build({ config }) {
    return config.targets.disks.map(({ path }) => ({
      collector: 'disks',
      target: path,
      async collect() {
        const stats = await statfs(path);
        const usage = diskUsage(stats);
        return {
          readings: [
            { family: 'upkeep_disk_used_ratio', labels: { path }, value: usage.usedRatio },
            { family: 'upkeep_disk_size_bytes', labels: { path }, value: usage.sizeBytes },
            { family: 'upkeep_disk_avail_bytes', labels: { path }, value: usage.availBytes },
            ...mountReadings(path, stats, await readMount(path)),
          ],
        };
      },
    }));
  },
};
