import { readVerify } from '../systems/files/verify-ledger.js';
import { listBackups, newestValidBackup } from '../systems/files/backups.js';
import { directoryPresent } from './dir.js';
import type { CollectorModule, Reading } from './framework/types.js';

export const backups: CollectorModule = {
  name: 'backups',
  families: [
    { name: 'upkeep_backup_last_success_timestamp_seconds', help: 'Modification time of the newest valid backup file.', type: 'gauge', labelNames: ['backup'] },
    { name: 'upkeep_backup_last_size_bytes', help: 'Size of the newest valid backup file.', type: 'gauge', labelNames: ['backup'] },
    { name: 'upkeep_backup_dir_present', help: 'Whether the backup directory exists (1) or is missing (0).', type: 'gauge', labelNames: ['backup'] },
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
        const present = await directoryPresent(target.dir);
        const files = present ? await listBackups(target.dir, target.pattern) : [];
        const readings: Reading[] = [
          { family: 'upkeep_backup_dir_present', labels: { backup }, value: present ? 1 : 0 },
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
