import type { Logger } from '../log.js';
import type { RunHistory } from './history.js';
import { isFinished, type RunRecord } from './journal.js';
import type { RemediationMetrics } from './metrics.js';
import { settleInterrupted } from './recovery.js';
import type { AlertSilences } from './silences.js';
import { HOST, otherProcessAlive } from './state/owner.js';
import { ownerKey, type ReplicaLeases, type StateStore } from './state/store.js';

export interface LeaseParts {
  readonly store: StateStore;
  readonly history: RunHistory;
  readonly metrics: RemediationMetrics;
  readonly silences?: AlertSilences;
  readonly log: Logger;
  readonly now: () => number;
  /** `state.postgres.leaseSeconds`, in ms. */
  readonly leaseMs: number;
}

/**
 * This process's lease in a shared store, renewed every third of the lease, and the sweep that
 * follows each renewal: the runs of a replica whose lease expired are journalled interrupted and
 * their alerts given back, by whichever live replica sweeps first. A renewal that fails (the
 * store is down) is logged and tried at the next tick; past the lease, peers take this replica
 * for dead.
 */
export class LeaseKeeper {
  private readonly timer: NodeJS.Timeout;
  private ticking: Promise<void> = Promise.resolve();
  /** Whether the last renewal failed: the store was out of reach. */
  private blind = false;
  /** When this replica reached the store again after losing it; null once a lease has passed since. */
  private seeingSince: number | null = null;

  private constructor(private readonly leases: ReplicaLeases, private readonly parts: LeaseParts) {
    this.timer = setInterval(() => { this.ticking = this.ticking.then(() => this.tick()); }, parts.leaseMs / 3);
    this.timer.unref();
  }

  /** Takes the lease before any run starts (a peer must never take this process's runs for a dead one's); null for a store without leases. */
  static async start(parts: LeaseParts): Promise<LeaseKeeper | null> {
    const { leases } = parts.store;
    if (!leases) return null;
    await leases.renew(parts.leaseMs);
    const keeper = new LeaseKeeper(leases, parts);
    await keeper.sweep();
    return keeper;
  }

  private async tick(): Promise<void> {
    const { now, leaseMs } = this.parts;
    try {
      await this.leases.renew(leaseMs);
    } catch (err) {
      this.parts.log.error({ err }, 'cannot renew the lease; peers take this replica for dead once it expires');
      this.blind = true;
      return;
    }
    if (this.blind) this.seeingSince = now();
    this.blind = false;
    // Back after losing the store, every peer that lost it too (the shared database was down) has
    // an expired lease it has not had the chance to renew: sweeping at once journalled live
    // replicas' runs interrupted and gave their alerts back. A lease's time to renew comes first;
    // a replica that really died meanwhile is swept that much later.
    if (this.seeingSince !== null && now() - this.seeingSince < leaseMs) return;
    this.seeingSince = null;
    await this.sweep();
  }

  private async sweep(): Promise<void> {
    const { log, now, leaseMs } = this.parts;
    try {
      const interrupted = await this.leases.interruptExpired(new Date(now()), leaseMs);
      await settleInterrupted(interrupted, this.parts, (record) => log.warn(
        { runId: record.id, remediation: record.remediation, host: record.host, pid: record.pid },
        'the replica running this run stopped renewing its lease; journalled as interrupted',
      ));
    } catch (err) {
      log.error({ err }, 'cannot check for expired leases; tried again at the next renewal');
    }
  }

  /** Stops renewing and gives the lease up: called once this process's runs have ended. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.ticking;
    await this.leases.release().catch((err: unknown) => this.parts.log.error({ err }, 'cannot give the lease up; it expires by itself'));
  }
}

/**
 * Whether runs are still owned by a live process: unfinished, and their owner is this process, or
 * holds a live lease (shared store), or is alive on this host (file store). The locks ask it
 * before cutting off what a run left running on a server.
 */
export class RunLiveness {
  constructor(private readonly store: StateStore) {}

  /** Each run the store knows, with whether its owner still lives; runs it does not know are left out. */
  async judge(runIds: readonly string[]): Promise<{ record: RunRecord; alive: boolean }[]> {
    const records = (await Promise.all(runIds.map((id) => this.store.get(id)))).filter((record) => record !== undefined);
    const others = records.filter((record) => !isFinished(record.status) && !ownRun(record));
    const live = this.store.leases
      ? await this.store.leases.live(others.flatMap((record) => (record.host !== undefined && record.pid !== undefined ? [{ host: record.host, pid: record.pid }] : [])))
      : null;
    return records.map((record) => ({ record, alive: !isFinished(record.status) && (ownRun(record) || ownerLives(record, live)) }));
  }
}

function ownRun(record: RunRecord): boolean {
  return record.host === HOST && record.pid === process.pid;
}

function ownerLives(record: RunRecord, live: ReadonlySet<string> | null): boolean {
  if (live === null) return otherProcessAlive(record.host, record.pid);
  return record.host !== undefined && record.pid !== undefined && live.has(ownerKey(record.host, record.pid));
}
