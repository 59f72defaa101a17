import type { Config } from '../../config/schema.js';
import { nodeCrypto } from '../../lazy.js';
import type { Logger } from '../../log.js';
import { HOST } from './owner.js';
import { StateDb } from './postgres-db.js';

// A dead replica's row is deleted by the next replica to join after this long: it only names who was there.
const FORGET_MS = 86_400_000;

export interface MembersOptions {
  /** How often a replica renews its heartbeat and reads who else is live (`state.postgres.memberHeartbeatSeconds`). */
  readonly heartbeatMs: number;
  /** A replica is live while its heartbeat is younger than this; then its targets move to the others (`state.postgres.memberLeaseSeconds`). */
  readonly leaseMs: number;
}

/**
 * This replica's membership of the fleet: a row in `members` whose heartbeat it renews, and the
 * list of live members (itself included) as of its last heartbeat. Liveness is judged on the
 * database's clock, so replicas whose clocks disagree still agree on who is live.
 *
 * When the state database cannot be reached, the last list is kept: if every replica lost it,
 * each keeps collecting its share (no gap); if only this one did, the others take its targets
 * once its heartbeat is older than the lease, and both collect them until it is back.
 */
export class Members {
  /** This replica's member id: its host and pid, and a random part so a restarted pid is a new member. */
  readonly id = `${HOST}/${process.pid}/${nodeCrypto().randomBytes(4).toString('hex')}`;
  private live: readonly string[] = [this.id];
  private timer: NodeJS.Timeout | null = null;
  private beating: Promise<void> = Promise.resolve();
  private failing = false;
  /** When the heartbeat worked again after failing (see beat). */
  private recoveredAt: number | null = null;
  private readonly joinedAt = performance.now();
  private readonly heartbeatMs: number;
  private readonly leaseMs: number;

  private constructor(private readonly db: StateDb, private readonly log: Logger, options: MembersOptions) {
    this.heartbeatMs = options.heartbeatMs;
    this.leaseMs = options.leaseMs;
  }

  /**
   * Joins: writes the first heartbeat and reads the live members before resolving, so the first
   * scrape already collects only this replica's share. The schema must be migrated (the state
   * store's open does it). A failure to join is the state store's failure at start: it throws.
   */
  static async join(db: StateDb, log: Logger, options: MembersOptions): Promise<Members> {
    const members = new Members(db, log, options);
    await db.query('forgetting long-dead replicas', `delete from ${db.table('members')} where heartbeat_at < clock_timestamp() - $1 * interval '1 millisecond'`, [FORGET_MS]);
    await members.beat();
    log.info({ member: members.id, members: members.live.length }, 'joined the replicas');
    members.schedule();
    return members;
  }

  /** The live members' ids, sorted, this replica's included. */
  ids(): readonly string[] {
    return this.live;
  }

  /**
   * Whether this replica should collect yet: not before it has been a member for two heartbeats.
   * By then every peer has read the members since it joined and dropped the targets that move to
   * it, so a target moving to a newcomer may go uncollected for a heartbeat, but is never
   * collected by two replicas at once.
   */
  settled(): boolean {
    return performance.now() - this.joinedAt >= 2 * this.heartbeatMs;
  }

  /** Leaves: stops the heartbeat and deletes this replica's row, so the others take its targets at their next heartbeat rather than after the lease. */
  async leave(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.beating;
    try {
      await this.db.query('leaving the replicas', `delete from ${this.db.table('members')} where id = $1`, [this.id]);
    } catch (err) {
      this.log.warn({ err }, 'cannot leave the replicas; the others take this replica\'s targets once its lease expires');
    }
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      this.beating = this.beat(this.failing).then(() => {
        if (this.failing) this.log.info({ member: this.id, members: this.live.length }, 'membership heartbeat works again');
        this.failing = false;
      }, (err: unknown) => {
        // Logged when it starts failing, not every two seconds.
        if (!this.failing) this.log.warn({ err }, 'membership heartbeat failed; this replica keeps collecting the targets it had');
        this.failing = true;
      }).finally(() => { if (this.timer) this.schedule(); });
    }, this.heartbeatMs);
    this.timer.unref();
  }

  /** Renews this replica's heartbeat, then reads who is live. */
  private async beat(recovering = false): Promise<void> {
    await this.db.query('renewing the membership heartbeat', `
      insert into ${this.db.table('members')} (id, host, pid) values ($1, $2, $3)
      on conflict (id) do update set heartbeat_at = clock_timestamp()`, [this.id, HOST, process.pid]);
    const rows = await this.db.query<{ id: string }>('reading the live replicas', `
      select id from ${this.db.table('members')} where heartbeat_at > clock_timestamp() - $1 * interval '1 millisecond' order by id`, [this.leaseMs]);
    // Sorted by the database's collation; sorted again here so the comparison below is exact.
    let live = rows.map((row) => row.id).sort();
    // Back after the database was out of reach, the peers that lost it too have heartbeats older
    // than the lease until their next beat: read as it was, this replica took itself for the only
    // one and collected their targets too (two replicas on one target, a helper saw) until they
    // beat. For a lease after coming back, the members it knew stay until that has passed.
    if (recovering) this.recoveredAt = performance.now();
    if (this.recoveredAt !== null && performance.now() - this.recoveredAt < this.leaseMs) live = [...new Set([...this.live, ...live])].sort();
    else this.recoveredAt = null;
    if (live.join('\n') !== this.live.join('\n') && this.timer !== null) this.log.info({ member: this.id, members: live }, 'the live replicas changed');
    this.live = live;
  }
}

/** With the PostgreSQL state store, joins the replicas on its own pool; with the file store, null (one replica, all targets). */
export async function joinReplicas(config: Readonly<Config>, log: Logger): Promise<{ members: Members; close(): Promise<void> } | null> {
  const shared = config.state.postgres;
  if (!shared) return null;
  const options = { heartbeatMs: shared.memberHeartbeatSeconds * 1000, leaseMs: shared.memberLeaseSeconds * 1000 };
  const db = new StateDb({ url: shared.url, schema: shared.schema, timeoutMs: shared.timeoutSeconds * 1000 });
  let members: Members;
  try {
    members = await Members.join(db, log, options);
  } catch (err) {
    await db.close();
    throw err;
  }
  return { members, close: async () => { await members.leave(); await db.close(); } };
}
