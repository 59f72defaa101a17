import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readVerify } from '../systems/files/verify-ledger.js';
import { globToRegExp } from '../systems/files/glob.js';
import type { CollectorModule, Reading } from './framework/types.js';

export interface BackupFile { name: string; path: string; sizeBytes: number; mtimeSeconds: number }

// A dump still being written (or abandoned by a crash) must never count as the newest backup.
const IN_PROGRESS = /\.(tmp|partial)$|^\./;
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);

/** Regular, non-empty files matching the pattern that are not temporary, newest first. */
export async function listBackups(dir: string, pattern: string): Promise<BackupFile[]> {
  const match = globToRegExp(pattern);
  const entries = await readdir(dir, { withFileTypes: true });
  const files: BackupFile[] = [];
  for (const entry of entries) {
    if (!entry.isFile() || IN_PROGRESS.test(entry.name) || !match.test(entry.name)) continue;
    const path = join(dir, entry.name);
    const info = await stat(path);
    if (info.size === 0) continue;
    files.push({ name: entry.name, path, sizeBytes: info.size, mtimeSeconds: info.mtimeMs / 1000 });
  }
  return files.sort((a, b) => b.mtimeSeconds - a.mtimeSeconds);
}

/** A .gz file must at least start with the gzip magic bytes; a cheap guard against truncated-to-garbage files. */
export async function looksValid(file: BackupFile): Promise<boolean> {
  if (!file.name.endsWith('.gz')) return true;
  const handle = await open(file.path, 'r');
  try {
    const head = Buffer.alloc(2);
    const { bytesRead } = await handle.read(head, 0, 2, 0);
    return bytesRead === 2 && head.equals(GZIP_MAGIC);
  } finally {
    await handle.close();
  }
}

export async function newestValidBackup(files: readonly BackupFile[]): Promise<BackupFile | null> {
  for (const file of files) if (await looksValid(file)) return file;
  return null;
}

export const backups: CollectorModule = {
  name: 'backups',
  families: [
    { name: 'upkeep_backup_last_success_timestamp_seconds', help: 'Modification time of the newest valid backup file.', type: 'gauge', labelNames: ['backup'] },
    { name: 'upkeep_backup_last_size_bytes', help: 'Size of the newest valid backup file.', type: 'gauge', labelNames: ['backup'] },
    { name: 'upkeep_backup_files', help: 'Number of complete, non-empty backup files matching the pattern.', type: 'gauge', labelNames: ['backup'] },
    { name: 'upkeep_backup_total_bytes', help: 'Total size of the complete backup files matching the pattern.', type: 'gauge', labelNames: ['backup'] },
    { name: 'upkeep_backup_last_verify_success_timestamp_seconds', help: 'Unix time backup.verify last restored a backup successfully.', type: 'gauge', labelNames: ['backup'] },
  ],
  build({ config }) {
    return config.targets.backups.map((target) => ({
      collector: 'backups',
      target: target.name,
      async collect() {
        const backup = target.name;
        const files = await listBackups(target.dir, target.pattern);
        const readings: Reading[] = [
          { family: 'upkeep_backup_files', labels: { backup }, value: files.length },
          { family: 'upkeep_backup_total_bytes', labels: { backup }, value: files.reduce((sum, f) => sum + f.sizeBytes, 0) },
        ];
        const newest = await newestValidBackup(files);
        if (newest) {
          readings.push({ family: 'upkeep_backup_last_success_timestamp_seconds', labels: { backup }, value: newest.mtimeSeconds });
          readings.push({ family: 'upkeep_backup_last_size_bytes', labels: { backup }, value: newest.sizeBytes });
        }
        const verified = await readVerify(config.state.dir, backup);
        if (verified) readings.push({ family: 'upkeep_backup_last_verify_success_timestamp_seconds', labels: { backup }, value: verified.timestamp });
        return { readings };
      },
    }));
  },
};
