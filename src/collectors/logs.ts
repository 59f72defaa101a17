import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CachedReading } from './framework/cache.js';
import { directoryPresent } from './dir.js';
import { globToRegExp } from '../systems/files/glob.js';
import type { CollectorModule } from './framework/types.js';

export interface DirUsage { bytes: number; files: number }

/** Sums matching regular files below dir, without following symlinks (they may point anywhere). */
export async function measureDir(dir: string, match: RegExp): Promise<DirUsage> {
  const usage: DirUsage = { bytes: 0, files: 0 };
  const entries = await readdir(dir, { withFileTypes: true });
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      const inner = await measureDir(path, match);
      usage.bytes += inner.bytes;
      usage.files += inner.files;
    } else if (entry.isFile() && match.test(entry.name)) {
      usage.bytes += (await lstat(path)).size;
      usage.files += 1;
    }
  }
  return usage;
}

export const logs: CollectorModule = {
  name: 'logs',
  families: [
    { name: 'upkeep_log_dir_present', help: 'Whether the log directory exists (1) or is missing (0).', type: 'gauge', labelNames: ['name'] },
    { name: 'upkeep_log_dir_bytes', help: 'Bytes of log files matching the pattern below the directory.', type: 'gauge', labelNames: ['name'] },
    { name: 'upkeep_log_files', help: 'Number of log files matching the pattern below the directory.', type: 'gauge', labelNames: ['name'] },
  ],
  build({ config }) {
    return config.targets.logs.map((target) => {
      const match = globToRegExp(target.pattern);
      // A missing directory is a reading too (present 0, nothing in it), cached like the sizes.
      const cache = new CachedReading(target.refreshSeconds, async () => (await directoryPresent(target.dir))
        ? { present: true, ...await measureDir(target.dir, match) }
        : { present: false, bytes: 0, files: 0 });
      return {
        collector: 'logs',
        target: target.name,
        async collect() {
          const { value, ageSeconds } = await cache.get();
          const name = target.name;
          return {
            readings: [
              { family: 'upkeep_log_dir_present', labels: { name }, value: value.present ? 1 : 0 },
              { family: 'upkeep_log_dir_bytes', labels: { name }, value: value.bytes },
              { family: 'upkeep_log_files', labels: { name }, value: value.files },
            ],
            cacheAges: [{ reading: 'log_dir', ageSeconds }],
          };
        },
        async close() { cache.stop(); },
      };
    });
  },
};
