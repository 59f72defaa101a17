import { duration, secondsExpr } from './format.js';
import type { RuleContext, RuleGroup } from './types.js';

// Prometheus renders $value +Inf as "+Inf"; rules that use +Inf for "none at all" test for it.
export const FINITE = 'lt $value 1e300';

export function backupRules({ thresholds: { backups }, series }: RuleContext): RuleGroup {
  const newest = series('upkeep_backup_last_success_timestamp_seconds');
  const present = series('upkeep_backup_dir_present');
  const verified = series('upkeep_backup_last_verify_success_timestamp_seconds');
  const maxAge = duration(backups.maxAge);
  const verifyMaxAge = duration(backups.verifyMaxAge);
  return {
    name: 'upkeep-backups',
    rules: [
      {
        alert: 'BackupTooOld',
        why: [
          'A daily backup at 02:00 plus 2 hours for a slow dump: 26h (the default) means a day was missed.',
          'No valid backup at all (none complete, or the directory is gone) is older than any',
          'threshold: that arm is +Inf, so a firing alert never resolves because its backups vanished.',
        ].join('\n'),
        expr: [
          `time() - ${newest} > ${secondsExpr(backups.maxAge)}`,
          'or on (job, instance, backup)',
          '(',
          `  ${present}`,
          `  unless on (job, instance, backup) ${newest}`,
          ') + Inf',
        ].join('\n'),
        forSeconds: 600,
        severity: 'critical',
        summary: `No valid backup is newer than ${maxAge}.`,
        description: `{{ if ${FINITE} }}The newest valid backup of {{ $labels.backup }} is {{ $value | humanizeDuration }} old (threshold ${maxAge}){{ else }}No valid backup of {{ $labels.backup }} can be seen: its directory is missing or holds no complete dump{{ end }}; the scheduled backup did not run, did not finish, or its files were removed.`,
      },
      {
        alert: 'BackupMissing',
        why: 'The directory is missing (upkeep_backup_dir_present 0) or holds no complete, valid dump at\nall. The value tells which: 0 for a missing directory, 1 for one without a valid dump.',
        expr: `${present} unless on (job, instance, backup) ${newest}`,
        forSeconds: 600,
        severity: 'critical',
        summary: 'There is no valid backup file.',
        description: '{{ if eq $value 0.0 }}The backup directory of {{ $labels.backup }} is missing{{ else }}The backup directory of {{ $labels.backup }} holds no complete, valid dump{{ end }} on {{ $labels.instance }}; there is nothing to restore from.',
      },
      {
        alert: 'BackupVerifyTooOld',
        why: 'The runbooks test a restore monthly (RefNet) or quarterly (ai-micro-service);\nmonthly plus a few days of slack (35 days, the default).',
        expr: `time() - ${verified} > ${secondsExpr(backups.verifyMaxAge)}`,
        forSeconds: 3600,
        severity: 'warning',
        summary: `No backup has been restored successfully in ${verifyMaxAge}.`,
        description: `The last successful restore test of {{ $labels.backup }} was {{ $value | humanizeDuration }} ago (threshold ${verifyMaxAge}).`,
      },
      {
        alert: 'BackupNeverVerified',
        why: 'Without this, a restore test that has never once succeeded would never alert:\nthere is no timestamp for BackupVerifyTooOld to age.',
        expr: `${newest} unless on (job, instance, backup) ${verified}`,
        forSeconds: 3600,
        severity: 'warning',
        summary: 'Backups exist but none has ever been restored successfully.',
        description: '{{ $labels.backup }} has backups but no successful restore test on record; a backup that was never restored is not known to work.',
      },
    ],
  };
}

export function logRules({ series }: RuleContext): RuleGroup {
  return {
    name: 'upkeep-logs',
    rules: [
      {
        alert: 'LogDirectoryMissing',
        why: 'A missing directory is reported as 0 rather than by its series vanishing, so it can alert.',
        expr: `${series('upkeep_log_dir_present')} == 0`,
        forSeconds: 600,
        severity: 'warning',
        summary: 'A watched log directory is missing.',
        description: 'The log directory of {{ $labels.name }} is missing on {{ $labels.instance }}: the application may be logging elsewhere (or nowhere), its size is no longer measured, and logs.rotate has nothing to rotate.',
      },
    ],
  };
}
