import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { errorCode } from '../errors.js';
import { DistinctErrors, errorMessage, type Logger } from '../log.js';
import type { LogTarget } from '../config/schema.js';
import { CachedReading } from './framework/cache.js';
import { directoryPresent } from './dir.js';
import { globToRegExp } from '../systems/files/glob.js';
import type { CollectorInstance, CollectorModule } from './framework/types.js';

/** A subdirectory left out of a measurement, and the error that kept upkeep out. */
export interface Unreadable { directory: string; err: string }

export interface DirUsage {
  bytes: number;
  files: number;
  /** Subdirectories that could not be listed, or whose files could not be stat'ed, by path. */
  unreadable: Unreadable[];
}

export interface LogDirReading extends DirUsage { present: boolean }

// What a directory upkeep's user may not read gives: /var/log/private is root's and 0700 on Debian.
const DENIED = new Set(['EACCES', 'EPERM']);

const UNREADABLE_MESSAGE = 'log subdirectory unreadable, skipped: its files are not counted in upkeep_log_dir_bytes and upkeep_log_files';
const REFRESH_FAILED = 'log directory refresh failed; serving the last sizes read';

/**
 * Sums matching regular files below dir, without following symlinks (they may point anywhere).
 * The directory itself must be readable: its failure is the collection's. A subdirectory upkeep
 * may not read is skipped and listed instead, so one private subdirectory never takes down the
 * whole target (upkeep runs as its own user under systemd and in containers).
 */
export async function measureDir(dir: string, match: RegExp): Promise<DirUsage> {
  let bytes = 0;
  let files = 0;
  const unreadable = new Map<string, string>();
  const skip = (directory: string, err: unknown): null => {
    if (directory === dir || !DENIED.has(errorCode(err) ?? '')) throw err;
    if (!unreadable.has(directory)) unreadable.set(directory, errorMessage(err));
    return null;
  };
  const visit = async (current: string): Promise<void> => {
    const entries = await readdir(current, { withFileTypes: true }).catch((err: unknown) => skip(current, err));
    for (const entry of entries ?? []) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) {
        await visit(path);
      } else if (entry.isFile() && match.test(entry.name)) {
        // Listed but not searchable (read without execute permission): the names, but no sizes.
        const info = await lstat(path).catch((err: unknown) => skip(current, err));
        if (!info) continue;
        bytes += info.size;
        files += 1;
      }
    }
  };
  await visit(dir);
  const sorted = [...unreadable].sort(([a], [b]) => a.localeCompare(b));
  return { bytes, files, unreadable: sorted.map(([directory, err]) => ({ directory, err })) };
}

/**
 * Reads a log target: present or missing, and what the pattern matches below it. Each unreadable
 * subdirectory is logged once while it stays unreadable, and again if it turns unreadable again
 * after it was read, not at every refresh.
 */
export function logDirReader(target: LogTarget, log: Logger): () => Promise<LogDirReading> {
  const match = globToRegExp(target.pattern);
  let reported = new Set<string>();
  return async () => {
    // A missing directory is a reading too (present 0, nothing in it).
    const present = await directoryPresent(target.dir);
    const usage = present ? await measureDir(target.dir, match) : { bytes: 0, files: 0, unreadable: [] };
    for (const { directory, err } of usage.unreadable) {
      if (!reported.has(directory)) log.warn({ name: target.name, directory, err }, UNREADABLE_MESSAGE);
    }
    reported = new Set(usage.unreadable.map(({ directory }) => directory));
    return { present, ...usage };
  };
}

function logCollector(target: LogTarget, log: Logger): CollectorInstance {
  const name = target.name;
  const cache = new CachedReading(target.refreshSeconds, logDirReader(target, log));
  // Only the first read fails the collection; a later one that fails (the directory itself turned
  // unreadable) serves the last reading, its age growing, and is logged once per distinct error.
  const refreshErrors = new DistinctErrors();
  return {
    collector: 'logs',
    target: name,
    async collect() {
      const { value, ageSeconds } = await cache.get();
      const err = cache.error ? errorMessage(cache.error) : null;
      if (refreshErrors.changed(err) && err) log.warn({ name, err }, REFRESH_FAILED);
      return {
        readings: [
          { family: 'upkeep_log_dir_present', labels: { name }, value: value.present ? 1 : 0 },
          { family: 'upkeep_log_dir_bytes', labels: { name }, value: value.bytes },
          { family: 'upkeep_log_files', labels: { name }, value: value.files },
          { family: 'upkeep_log_unreadable_dirs', labels: { name }, value: value.unreadable.length },
        ],
        cacheAges: [{ reading: 'log_dir', ageSeconds }],
      };
    },
    async close() { cache.stop(); },
  };
}

export const logs: CollectorModule = {
  name: 'logs',
  families: [
    { name: 'upkeep_log_dir_present', help: 'Whether the log directory exists (1) or is missing (0).', type: 'gauge', labelNames: ['name'] },
    { name: 'upkeep_log_dir_bytes', help: 'Bytes of log files matching the pattern below the directory.', type: 'gauge', labelNames: ['name'] },
    { name: 'upkeep_log_files', help: 'Number of log files matching the pattern below the directory.', type: 'gauge', labelNames: ['name'] },
    { name: 'upkeep_log_unreadable_dirs', help: 'Subdirectories below the log directory that upkeep may not read (skipped: their files are not counted).', type: 'gauge', labelNames: ['name'] },
  ],
  build({ config, log }) {
    return config.targets.logs.map((target) => logCollector(target, log));
  },
};
