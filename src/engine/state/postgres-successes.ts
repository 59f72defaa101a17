import { storableText, type StateDb } from './postgres-db.js';
import type { SuccessRecord, SuccessRecords } from './store.js';

/**
 * The newest success of each (remediation, subject) in PostgreSQL: one upsert that keeps the
 * newer of the row and the new record, so replicas recording out of order never move it back.
 */
export class PostgresSuccesses implements SuccessRecords {
  constructor(private readonly db: StateDb) {}

  async record(success: SuccessRecord): Promise<void> {
    await this.db.query('recording a success', `
      insert into ${this.db.table('success_records')} as kept (remediation, subject, at_ms, detail) values ($1, $2, $3, $4)
      on conflict (remediation, subject) do update set at_ms = excluded.at_ms, detail = excluded.detail
      where kept.at_ms < excluded.at_ms`,
    [storableText(success.remediation), storableText(success.subject), Math.floor(success.atMs), storableText(success.detail)]);
  }

  async read(remediation: string): Promise<SuccessRecord[]> {
    const rows = await this.db.query<{ subject: string; at_ms: string; detail: string }>('reading the successes', `
      select subject, at_ms, detail from ${this.db.table('success_records')} where remediation = $1 order by subject`, [storableText(remediation)]);
    return rows.map((row) => ({ remediation, subject: row.subject, atMs: Number(row.at_ms), detail: row.detail }));
  }
}
