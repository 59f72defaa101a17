import { count, duration, percent, promDuration, secondsExpr } from './format.js';
import { FINITE } from './files.js';
import type { RuleContext, RuleGroup } from './types.js';

const TABLE = 'job, instance, target, database, schema, table';

export function postgresRules({ thresholds: { postgres }, series }: RuleContext): RuleGroup {
  const dead = series('upkeep_postgres_dead_tuples');
  const lastVacuum = series('upkeep_postgres_last_vacuum_timestamp_seconds');
  const notVacuumedFor = duration(postgres.notVacuumedFor);
  return {
    name: 'upkeep-postgres',
    rules: [
      {
        alert: 'PostgresDeadTuplesHigh',
        why: [
          'Both an absolute count and a share of the table: a large table crosses 10k dead tuples',
          'between two autovacuums all the time, and a tiny one crosses 20% with a few updates.',
          "Autovacuum's own trigger is 20% + 50 rows, so 15 minutes over both means it is not keeping up.",
        ].join('\n'),
        expr: [
          `${dead} > ${postgres.deadTuples}`,
          'and',
          `${dead} / (${dead} + ${series('upkeep_postgres_live_tuples')}) > ${postgres.deadTuplesRatio}`,
        ].join('\n'),
        forSeconds: 900,
        severity: 'warning',
        summary: 'A table has many dead tuples and autovacuum is not keeping up.',
        description: `{{ $labels.schema }}.{{ $labels.table }} in database {{ $labels.database }} on {{ $labels.target }} has {{ $value | humanize }} dead tuples, more than ${count(postgres.deadTuples)} and more than ${percent(postgres.deadTuplesRatio)} of its rows.`,
      },
      {
        alert: 'PostgresTableNotVacuumed',
        why: [
          'The runbooks vacuum weekly; 8 days (the default) leaves a day of slack. Tables without dead',
          'tuples need no vacuum, however long ago the last one was. A table with no vacuum on record',
          '(never vacuumed, or statistics reset) counts once upkeep has watched it that long (the',
          'offset arm); its value is +Inf.',
        ].join('\n'),
        expr: [
          '(',
          `  time() - ${lastVacuum} > ${secondsExpr(postgres.notVacuumedFor)}`,
          '  or',
          '  (',
          `    ${dead} unless on (${TABLE}) ${lastVacuum}`,
          `    and on (job, target, database, schema, table) ${dead} offset ${promDuration(postgres.notVacuumedFor)}`,
          '  ) + Inf',
          ')',
          `and on (${TABLE})`,
          `${dead} > ${postgres.notVacuumedDeadTuples}`,
        ].join('\n'),
        forSeconds: 3600,
        severity: 'warning',
        summary: `A table with dead tuples has not been vacuumed in over ${notVacuumedFor}.`,
        description: `{{ $labels.schema }}.{{ $labels.table }} in database {{ $labels.database }} on {{ $labels.target }} {{ if ${FINITE} }}was last vacuumed {{ $value | humanizeDuration }} ago{{ else }}has no vacuum on record{{ end }} and has dead tuples; the weekly vacuum missed it.`,
      },
      {
        alert: 'PostgresDatabaseDown',
        why: 'One database of a server that otherwise answers; the whole server down is UpkeepTargetDown.',
        expr: `${series('upkeep_postgres_database_up')} == 0\nunless on (job, instance, target)\n${series('upkeep_postgres_up')} == 0`,
        forSeconds: 300,
        severity: 'critical',
        summary: 'A PostgreSQL database does not answer while its server does.',
        description: 'Database {{ $labels.database }} on {{ $labels.target }} does not answer upkeep (dropped, renamed, refusing connections, or its connection limit reached); its metrics are missing and remediations against it cannot run.',
      },
      {
        alert: 'PostgresConnectionsNearLimit',
        why: 'At max_connections (less the superuser reserve) new connections are refused.',
        expr: [
          `sum by (job, instance, target) (${series('upkeep_postgres_connections')})`,
          '/ on (job, instance, target)',
          `${series('upkeep_postgres_max_connections')} > ${postgres.connectionsRatio}`,
        ].join('\n'),
        forSeconds: 600,
        severity: 'warning',
        summary: `PostgreSQL uses more than ${percent(postgres.connectionsRatio)} of max_connections.`,
        description: `{{ $labels.target }} has {{ $value | humanizePercentage }} of its max_connections in use (threshold ${percent(postgres.connectionsRatio)}); at the limit new connections are refused.`,
      },
      {
        alert: 'PostgresReplicationLag',
        why: 'Seen from the primary (per standby) and from a standby itself; either view fires.',
        expr: [
          `${series('upkeep_postgres_replication_lag_seconds')} > ${secondsExpr(postgres.replicationLag)}`,
          'or',
          `${series('upkeep_postgres_standby_replay_lag_seconds')} > ${secondsExpr(postgres.replicationLag)}`,
        ].join('\n'),
        forSeconds: 300,
        severity: 'warning',
        summary: `A PostgreSQL standby replays more than ${duration(postgres.replicationLag)} behind its primary.`,
        description: `{{ if $labels.standby }}Standby {{ $labels.standby }} of {{ $labels.target }}{{ else }}Standby {{ $labels.target }}{{ end }} is {{ $value | humanizeDuration }} behind its primary (threshold ${duration(postgres.replicationLag)}); reads there are stale and a failover now would lose that much.`,
      },
      {
        alert: 'PostgresStandbyNotStreaming',
        why: [
          'The lag alert sees a standby cut off from its primary only once its lag passes the',
          'threshold. Five minutes covers a primary\'s restart (the WAL receiver retries every 5 s).',
          'A standby that recovers from the archive only has no such series, so it never fires.',
        ].join('\n'),
        expr: `${series('upkeep_postgres_standby_streaming')} == 0`,
        forSeconds: 300,
        severity: 'critical',
        summary: 'A PostgreSQL standby is not streaming WAL from its primary.',
        description: 'The WAL receiver of standby {{ $labels.target }} on {{ $labels.instance }} is not streaming from its primary: it replays only what it already has (or the archive), its reads get staler, and a failover to it would lose what it missed.',
      },
    ],
  };
}
