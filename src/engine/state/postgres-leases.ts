import type { RunRecord } from '../journal.js';
import { HOST, interruptedRecord, replicaName } from './owner.js';
import { storableJson, storableText, type StateDb } from './postgres-db.js';
import { ownerKey, type ReplicaLeases } from './store.js';

const UNFINISHED = ['queued', 'running'];
// The database's clock in epoch ms: every lease is written and judged by it, so replicas whose
// clocks disagree still agree on which lease expired.
const DB_NOW = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

/** The PostgreSQL store's leases: one row per process, `(host, pid, expires_ms)`. */
export class PostgresLeases implements ReplicaLeases {
  constructor(private readonly db: StateDb, private readonly parse: (text: string) => RunRecord | undefined, private readonly now: () => number) {}

  async renew(leaseMs: number): Promise<void> {
    await this.db.query('renewing the lease', `
      insert into ${this.db.table('leases')} (host, pid, expires_ms) values ($1, $2, ${DB_NOW} + $3)
      on conflict (host, pid) do update set expires_ms = excluded.expires_ms`, [storableText(HOST), process.pid, Math.ceil(leaseMs)]);
  }

  async live(owners: readonly { host: string; pid: number }[]): Promise<ReadonlySet<string>> {
    if (owners.length === 0) return new Set();
    const rows = await this.db.query<{ host: string; pid: number }>('reading leases', `
      select host, pid from ${this.db.table('leases')} where expires_ms >= ${DB_NOW}
        and (host, pid) in (select * from unnest($1::text[], $2::int[]))`,
    [owners.map((owner) => storableText(owner.host)), owners.map((owner) => owner.pid)]);
    return new Set(rows.map((row) => ownerKey(row.host, row.pid)));
  }

  async interruptExpired(now: Date, leaseMs: number): Promise<RunRecord[]> {
    // One instant for the whole sweep, so the leases forgotten at the end are exactly the ones whose runs were looked at.
    const [clock] = await this.db.query<{ now_ms: string }>('reading the clock', `select ${DB_NOW} as now_ms`);
    const dbNow = Number(clock?.now_ms);
    // Runs whose owner's lease expired, or whose owner never held one (an upkeep from before
    // leases) and has not written for a lease: never this process's own.
    const rows = await this.db.query<{ record: string; host: string; pid: number }>('finding the runs of expired leases', `
      select r.record::text as record, r.host, r.pid from ${this.db.table('runs')} r
      left join ${this.db.table('leases')} l on l.host = r.host and l.pid = r.pid
      where r.status = any($1) and r.host is not null and r.pid is not null and not (r.host = $2 and r.pid = $3)
        and (l.expires_ms < $5 or (l.host is null and r.updated_ms < $4))
      order by r.queued_ms, r.id`, [UNFINISHED, storableText(HOST), process.pid, Math.floor(this.now() - leaseMs), dbNow]);
    const interrupted: RunRecord[] = [];
    for (const row of rows) {
      const record = this.parse(row.record);
      if (!record) continue;
      const marked = interruptedRecord(record, now, replicaName(row.host, row.pid));
      // Only while it is still unfinished: another peer may have marked it first.
      const updated = await this.db.query('marking a run interrupted', `
        update ${this.db.table('runs')} set status = 'interrupted', updated_ms = $3, record = $2::jsonb where id = $1 and status = any($4)
        returning 1`, [storableText(record.id), storableJson(marked), Math.floor(this.now()), UNFINISHED]);
      if (updated.length > 0) interrupted.push(marked);
    }
    // An expired lease's runs are marked above (their rows no longer need it).
    await this.db.query('forgetting expired leases', `delete from ${this.db.table('leases')} where expires_ms < $1`, [dbNow]);
    return interrupted;
  }

  async release(): Promise<void> {
    await this.db.query('giving the lease up', `delete from ${this.db.table('leases')} where host = $1 and pid = $2`, [storableText(HOST), process.pid]);
  }
}
