import { bytes, bytesExpr, count, duration, percent, secondsExpr } from './format.js';
import type { RuleContext, RuleGroup } from './types.js';

// 2^31: how far transaction and multixact IDs can age before PostgreSQL stops assigning them.
const WRAPAROUND_LIMIT = 2147483648;

export function postgresHorizonRules({ thresholds: { postgres }, series }: RuleContext): RuleGroup {
  return {
    name: 'upkeep-postgres-horizon',
    rules: [
      {
        alert: 'PostgresWraparoundRisk',
        why: [
          'Past autovacuum_freeze_max_age autovacuum forces an anti-wraparound vacuum; 110% (the',
          'default) for half an hour means that vacuum is not finishing or cannot freeze (a held horizon).',
        ].join('\n'),
        expr: [
          `${series('upkeep_postgres_xid_age')}`,
          '/ on (job, instance, target) group_left',
          `${series('upkeep_postgres_freeze_max_age')} > ${postgres.freezeMaxAgeRatio}`,
        ].join('\n'),
        forSeconds: 1800,
        severity: 'warning',
        summary: `A database's oldest unfrozen transaction ID is past ${percent(postgres.freezeMaxAgeRatio)} of autovacuum_freeze_max_age.`,
        description: `The age of the oldest unfrozen transaction ID in database {{ $labels.database }} on {{ $labels.target }} is {{ $value | humanizePercentage }} of autovacuum_freeze_max_age (threshold ${percent(postgres.freezeMaxAgeRatio)}); autovacuum is not freezing it, and at 2^31 PostgreSQL stops accepting writes.`,
      },
      {
        alert: 'PostgresWraparoundImminent',
        why: 'The share of the 2^31 IDs PostgreSQL can hand out before it stops writes, for transaction\nand multixact IDs alike; at 50% (the default) a day of heavy writes could be all that is left.',
        expr: [
          '(',
          `  label_replace(${series('upkeep_postgres_xid_age')}, "ids", "transaction", "", "")`,
          '  or',
          `  label_replace(${series('upkeep_postgres_mxid_age')}, "ids", "multixact", "", "")`,
          `) / ${WRAPAROUND_LIMIT} > ${postgres.wraparoundRatio}`,
        ].join('\n'),
        forSeconds: 300,
        severity: 'critical',
        summary: `A database has used more than ${percent(postgres.wraparoundRatio)} of its ID space before wraparound.`,
        description: `Database {{ $labels.database }} on {{ $labels.target }} has used {{ $value | humanizePercentage }} of its {{ $labels.ids }} ID space (threshold ${percent(postgres.wraparoundRatio)}); when it runs out PostgreSQL refuses every write until the database is vacuumed.`,
      },
      {
        alert: 'PostgresLongTransaction',
        why: 'An open transaction holds back the horizon: no VACUUM anywhere on the server can remove\nrows that died after it began.',
        expr: `${series('upkeep_postgres_oldest_transaction_age_seconds')} > ${secondsExpr(postgres.longTransaction)}`,
        forSeconds: 300,
        severity: 'warning',
        summary: `A PostgreSQL transaction has been open for more than ${duration(postgres.longTransaction)}.`,
        description: `The oldest open transaction in database {{ $labels.database }} on {{ $labels.target }} has been open for {{ $value | humanizeDuration }} (threshold ${duration(postgres.longTransaction)}); until it ends VACUUM cannot remove the rows that died since it began.`,
      },
      {
        alert: 'PostgresIdleInTransaction',
        why: 'A session that began a transaction and went quiet (an application that forgot to commit)\nholds its locks and the horizon while doing nothing.',
        expr: `${series('upkeep_postgres_idle_in_transaction_oldest_seconds')} > ${secondsExpr(postgres.idleInTransaction)}`,
        forSeconds: 300,
        severity: 'warning',
        summary: `A PostgreSQL session has been idle in a transaction for more than ${duration(postgres.idleInTransaction)}.`,
        description: `A session on {{ $labels.target }} has been idle in transaction for {{ $value | humanizeDuration }} (threshold ${duration(postgres.idleInTransaction)}); it holds its locks and VACUUM's horizon while doing nothing.`,
      },
      {
        alert: 'PostgresVacuumHorizonHeld',
        why: 'Measured in transactions, not seconds: what the horizon costs is the writes VACUUM cannot clean\nup behind it. The holder label names what holds it (backend, replication_slot, prepared_xact, standby).',
        expr: `${series('upkeep_postgres_oldest_xmin_age')} > ${postgres.horizonXminAge}`,
        forSeconds: 900,
        severity: 'warning',
        summary: `VACUUM's horizon is held more than ${count(postgres.horizonXminAge)} transactions back.`,
        description: `A {{ $labels.holder }} on {{ $labels.target }} holds the xmin horizon {{ $value | humanize }} transactions back (threshold ${count(postgres.horizonXminAge)}); VACUUM cannot remove any row that died since, in any table.`,
      },
      {
        alert: 'PostgresReplicationSlotInactive',
        why: [
          'A slot nobody consumes keeps every WAL segment and its xmin forever: the disk fills and the',
          'horizon stays held. A slot that holds neither (created without reserving WAL, never used) costs',
          'nothing, and is left out.',
        ].join('\n'),
        expr: [
          `${series('upkeep_postgres_replication_slot_active')} == 0`,
          'and on (job, instance, target, slot)',
          `(${series('upkeep_postgres_replication_slot_retained_wal_bytes')} or ${series('upkeep_postgres_replication_slot_xmin_age')} > 0)`,
        ].join('\n'),
        forSeconds: 1800,
        severity: 'warning',
        summary: 'A PostgreSQL replication slot has no consumer.',
        description: 'Replication slot {{ $labels.slot }} on {{ $labels.target }} is inactive: its standby or logical consumer is gone, and the slot retains WAL (and may hold the xmin horizon) until it returns or the slot is dropped.',
      },
      {
        alert: 'PostgresReplicationSlotRetainingWal',
        expr: `${series('upkeep_postgres_replication_slot_retained_wal_bytes')} > ${bytesExpr(postgres.slotRetainedWal)}`,
        forSeconds: 600,
        severity: 'warning',
        summary: `A PostgreSQL replication slot retains more than ${bytes(postgres.slotRetainedWal)} of WAL.`,
        description: `Replication slot {{ $labels.slot }} on {{ $labels.target }} retains {{ $value | humanize1024 }}B of WAL (threshold ${bytes(postgres.slotRetainedWal)}); its consumer is behind or gone, and pg_wal grows until the disk is full.`,
      },
    ],
  };
}
