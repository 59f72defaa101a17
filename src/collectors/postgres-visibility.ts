import type pg from 'pg';
import { z } from 'zod';
import type { Logger } from '../log.js';
import { onFirstUse } from '../lazy-schema.js';
import { READ_ALL_STATS } from '../systems/postgres/horizon.js';

// What a role without pg_read_all_stats (in pg_monitor) sees of other roles' sessions. PostgreSQL
// (15) shows it their pid, database, user, application_name, backend_xid and backend_xmin, but
// not their state, backend_type, xact_start, state_change or query; pg_stat_progress_vacuum shows
// their pid and database with every other column NULL; pg_stat_statements hides their queryids.
// The families below cannot be told apart from such a view (a client backend from the logical
// replication launcher, which runs as the bootstrap superuser; an autovacuum worker from any
// auxiliary process), so for such a role they are left out, never exported as a wrong 0.
// pg_locks and pg_stat_database show everything to everyone: lock waits, deadlocks and rollbacks
// stay. The check is in each query itself (READ_ALL_STATS), so a reading and its privilege agree.

/** What a target without pg_read_all_stats does not export, as its log line names them. */
export function hiddenFamilies(statements: boolean): string[] {
  return [
    'upkeep_postgres_connections',
    'upkeep_postgres_autovacuum_workers',
    'upkeep_postgres_oldest_xmin_age{holder="backend"}',
    'upkeep_postgres_oldest_xmin_backend_info',
    'upkeep_postgres_idle_in_transaction_sessions',
    'upkeep_postgres_idle_in_transaction_oldest_seconds',
    'upkeep_postgres_oldest_transaction_age_seconds',
    'upkeep_postgres_standby_streaming',
    'upkeep_postgres_replication_lag_seconds',
    'upkeep_postgres_replication_lag_bytes',
    'upkeep_postgres_replication_info',
    ...(statements ? ['upkeep_postgres_statement_seconds_total', 'upkeep_postgres_statement_calls_total'] : []),
  ];
}

const VISIBILITY_SQL = `SELECT current_user::text AS role, ${READ_ALL_STATS} AS read_all_stats`;
const visibilityRow = onFirstUse(() => z.object({ role: z.string(), read_all_stats: z.boolean() }));

/**
 * Says, once per target, which families it leaves out for want of pg_read_all_stats (and again
 * only if a GRANT or REVOKE changes that while upkeep runs); a target whose role has it logs
 * nothing.
 */
export class Visibility {
  private last: boolean | null = null;

  constructor(private readonly target: string, private readonly statements: boolean, private readonly log: Logger) {}

  async check(pool: pg.Pool): Promise<void> {
    const [row] = z.tuple([visibilityRow]).parse((await pool.query(VISIBILITY_SQL)).rows);
    const before = this.last;
    this.last = row.read_all_stats;
    if (before === row.read_all_stats || (before === null && row.read_all_stats)) return;
    const families = hiddenFamilies(this.statements);
    const { target } = this;
    if (row.read_all_stats) {
      this.log.info({ target, role: row.role, families }, `role "${row.role}" now has pg_read_all_stats; ${families.join(', ')} are exported again for target "${target}"`);
    } else {
      this.log.info({ target, role: row.role, families },
        `role "${row.role}" lacks pg_read_all_stats (grant it pg_monitor), so it cannot see other roles' sessions; ${families.join(', ')} are not exported for target "${target}", and only its own running vacuums are`);
    }
  }
}
