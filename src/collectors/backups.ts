import { readVerify, type VerifyEntry } from '../systems/files/verify-ledger.js';
import { CLOCK_SKEW_SECONDS, fromTheFuture, listBackups, newestValidBackup, type BackupFile } from '../systems/files/backups.js';
import type { BackupTarget } from '../config/schema.js';
import { errorMessage, type Logger } from '../log.js';
import { directoryPresent } from './dir.js';
import type { CollectorInstance, CollectorModule, Reading, SharedSuccess } from './framework/types.js';

export const backups: CollectorModule = {
  name: 'backups',
  families: [
    { name: 'upkeep_backup_last_success_timestamp_seconds', help: 'Modification time of the newest valid backup file.', type: 'gauge', labelNames: ['backup'] },
    { name: 'upkeep_backup_last_size_bytes', help: 'Size of the newest valid backup file.', type: 'gauge', labelNames: ['backup'] },
    { name: 'upkeep_backup_dir_present', help: 'Whether the backup directory exists (1) or is missing (0).', type: 'gauge', labelNames: ['backup'] },
    { name: 'upkeep_backup_files', help: 'Number of complete, non-empty backup files matching the pattern.', type: 'gauge', labelNames: ['backup'] },
    { name: 'upkeep_backup_total_bytes', help: 'Total size of the complete backup files matching the pattern.', type: 'gauge', labelNames: ['backup'] },
    { name: 'upkeep_backup_unreadable', help: 'Backups matching the pattern that upkeep\'s user may not read: a directory-format dump it cannot search is not counted at all, a file it cannot open is never the newest valid backup.', type: 'gauge', labelNames: ['backup'] },
    { name: 'upkeep_backup_last_verify_success_timestamp_seconds', help: 'Unix time backup.verify last restored a backup successfully.', type: 'gauge', labelNames: ['backup'] },
  ],
  build({ config, log, successes }) {
    const sharedVerifies = async () => (successes ? successes(VERIFY) : new Map<string, SharedSuccess>());
    return config.targets.backups.map((target) => backupCollector(target, config.state.dir, sharedVerifies, log));
  },
};

// The remediation whose successes the verify timestamp reports.
const VERIFY = 'backup.verify';

/**
 * When the backup was last verified, in Unix seconds: the newer of this replica's ledger (its
 * state.dir) and the shared record (state.postgres), which holds a verify any replica ran.
 */
export function lastVerified(local: VerifyEntry | null, shared: SharedSuccess | undefined): number | null {
  const times = [...(local ? [local.timestamp] : []), ...(shared ? [shared.atMs / 1000] : [])];
  return times.length > 0 ? Math.max(...times) : null;
}

function backupCollector(target: BackupTarget, stateDir: string, sharedVerifies: () => Promise<ReadonlyMap<string, SharedSuccess>>, log: Logger): CollectorInstance {
  const backup = target.name;
  // Future-dated files already logged: each once while it stays, not at every scrape.
  const reported = new Set<string>();
  const reportFuture = (files: readonly BackupFile[], nowSeconds: number): void => {
    const ahead = files.filter((file) => fromTheFuture(file, nowSeconds));
    for (const file of ahead) {
      if (!reported.has(file.name)) log.warn({ backup, file: file.name, mtimeSeconds: file.mtimeSeconds }, `backup file modified more than ${CLOCK_SKEW_SECONDS} s in the future; not taken for the newest valid backup`);
    }
    reported.clear();
    for (const file of ahead) reported.add(file.name);
  };
  // Unreadable backups already logged: each once while it stays unreadable.
  let unreadableBefore = new Set<string>();
  const reportUnreadable = (unreadable: ReadonlyMap<string, string>): void => {
    for (const [file, err] of unreadable) {
      if (!unreadableBefore.has(file)) log.warn({ backup, file, err }, 'backup not readable by upkeep\'s user: not counted, never the newest valid backup (pg_dump -Fd makes its directory 0700; let upkeep\'s user read it)');
    }
    unreadableBefore = new Set(unreadable.keys());
  };
  return {
    collector: 'backups',
    target: backup,
    async collect() {
      const unreadable = new Map<string, string>();
      const onUnreadable = (file: string, err: unknown) => { unreadable.set(file, errorMessage(err)); };
      const present = await directoryPresent(target.dir);
      const files = present ? await listBackups(target.dir, target.pattern, onUnreadable) : [];
      const nowSeconds = Date.now() / 1000;
      reportFuture(files, nowSeconds);
      const newest = await newestValidBackup(files, nowSeconds, onUnreadable);
      reportUnreadable(unreadable);
      const readings: Reading[] = [
        { family: 'upkeep_backup_dir_present', labels: { backup }, value: present ? 1 : 0 },
        { family: 'upkeep_backup_files', labels: { backup }, value: files.length },
        { family: 'upkeep_backup_total_bytes', labels: { backup }, value: files.reduce((sum, f) => sum + f.sizeBytes, 0) },
        { family: 'upkeep_backup_unreadable', labels: { backup }, value: unreadable.size },
      ];
      if (newest) {
        readings.push({ family: 'upkeep_backup_last_success_timestamp_seconds', labels: { backup }, value: newest.mtimeSeconds });
        readings.push({ family: 'upkeep_backup_last_size_bytes', labels: { backup }, value: newest.sizeBytes });
      }
      const [local, shared] = await Promise.all([readVerify(stateDir, backup), sharedVerifies()]);
      const verified = lastVerified(local, shared.get(backup));
      if (verified !== null) readings.push({ family: 'upkeep_backup_last_verify_success_timestamp_seconds', labels: { backup }, value: verified });
      return { readings };
    },
  };
}
