import type { Logger } from '../../log.js';
import type { RunRecord, RunStatus } from '../journal.js';
import type { Trigger } from '../../actions/contract.js';

/**
 * Everything the engine keeps between runs and across restarts: the run journal and the
 * guards' memory (alert claims, cooldowns, circuit-breaker failures, last successes). The
 * embedded implementation is a directory (file-store.ts); a shared one (PostgreSQL) implements
 * the same interface so several replicas see one state. Every guard operation is async and
 * answers from one place, so a shared store can make each claim a single statement.
 */
export interface StateStore {
  /**
   * Records the run's new state (one line per state change; the last one is the run's state).
   * `written` resolves once the record survives upkeep being killed, `durable` once it survives
   * the machine going down. The webhook acknowledges on `written`. `durable` says `late` when
   * the store kept its record instead: a peer had already finished the run (journalled it
   * interrupted while its owner stalled past its lease), so the owner's write does not replace
   * that; a final state is attached to the record as `late`.
   */
  append(record: RunRecord): { written: Promise<void>; durable: Promise<Appended> };
  /** The run's latest state, or undefined when the store has no such run. */
  get(id: string): Promise<RunRecord | undefined>;
  /** Newest first; `next` is null on the last page. Throws InvalidCursorError for a cursor it did not make. */
  list(filter: RunFilter, cursor: string | null, limit: number): Promise<RunPage>;
  /** The same page with each run as its JSON text (checked against the record schema), for a reply that need not rebuild objects. */
  listJson(filter: RunFilter, cursor: string | null, limit: number): Promise<RunPageJson>;
  /** Marks runs that a dead process left queued or running as interrupted; returns them. */
  recoverInterrupted(now: Date): Promise<RunRecord[]>;
  /**
   * The records of a journal written before this store existed, once, so the engine can rebuild
   * the guards' memory from them; the store files them as it goes. Empty when there is none.
   */
  legacyRecords(): AsyncIterable<RunRecord>;
  /** Lines the store could not read back at open (a torn last line after a crash), per file. */
  readonly skipped: readonly { file: string; lines: number }[];
  readonly guards: GuardMemory;
  /**
   * The leases of the processes sharing this store, so a live replica can tell a dead one's runs;
   * null for a store that serves one host (the file store), where a start recovers what a crash left.
   */
  readonly leases: ReplicaLeases | null;
  /**
   * What successful runs leave for every replica to read (backup.verify: the backup it verified),
   * so the replica that collects a target reports a success another one had; null for a store
   * that serves one host (the file store), where the action's own files say it.
   */
  readonly successes: SuccessRecords | null;
  close(): Promise<void>;
}

/** The last success of a remediation on one object (its subject), and what it was about. */
export interface SuccessRecord {
  readonly remediation: string;
  /** What the success was on: backup.verify's backup. */
  readonly subject: string;
  readonly atMs: number;
  /** What it was about: backup.verify's file. */
  readonly detail: string;
}

/** The newest success of each (remediation, subject), shared by the replicas. One row each, never pruned. */
export interface SuccessRecords {
  /** Keeps the record unless a newer one of the same remediation and subject is kept already. */
  record(success: SuccessRecord): Promise<void>;
  /** The remediation's records, one per subject. */
  read(remediation: string): Promise<SuccessRecord[]>;
}

/**
 * Each process sharing a store holds a lease there while it lives (`upkeep serve` and `upkeep
 * run` alike), named as its runs name their owner: host and pid. Expiry is the store's clock.
 */
export interface ReplicaLeases {
  /** Takes or extends this process's lease to `leaseMs` from now. */
  renew(leaseMs: number): Promise<void>;
  /** Of these owners, the ones whose lease is live now (as `host pid`). */
  live(owners: readonly { host: string; pid: number }[]): Promise<ReadonlySet<string>>;
  /**
   * Marks the queued and running runs of every other process whose lease has expired (or that
   * never held one and has not written for `leaseMs`) as interrupted, each naming its dead
   * owner, and forgets the expired leases; returns the runs it marked.
   */
  interruptExpired(now: Date, leaseMs: number): Promise<RunRecord[]>;
  /** Gives this process's lease up (a clean stop, once its runs have ended). */
  release(): Promise<void>;
}

/** `stored`, or `late`: the run was already finished by a peer, and the record kept (see append). */
export type Appended = 'stored' | 'late';

/** How a lease names its owner. */
export function ownerKey(host: string, pid: number): string {
  return `${host} ${pid}`;
}

/** The guards' memory. Bounded: a store may forget what no guard can need any more (documented per store). */
export interface GuardMemory {
  /** Claims an alert delivery for a run; answers the run that already holds it, or undefined when this run now does. */
  claimAlert(key: string, runId: string, atMs: number): Promise<string | undefined>;
  /** Gives a claim back (only the run that holds it can), so a re-delivery may run. */
  releaseAlert(key: string, runId: string): Promise<void>;
  /** What a finished run changes: the lock key it executed on, and whether it counts as a success or a failure. */
  recordOutcome(outcome: RunOutcome): Promise<void>;
  /** When a run last executed on this (remediation, target object), in epoch ms. */
  lastExecuted(lockKey: string): Promise<number | undefined>;
  /** Failures of the remediation after `sinceMs` and after its last success. */
  recentFailures(remediation: string, sinceMs: number): Promise<number>;
  /** The last success of each remediation, in epoch ms. */
  lastSuccesses(): Promise<ReadonlyMap<string, number>>;
  /**
   * Claims a schedule tick, named by its job and nominal time (the time it was due, not the clock
   * of whoever fires it), for a run; answers the run that already holds it, or undefined when
   * this run now does.
   */
  claimTick(job: string, nominalMs: number, runId: string): Promise<string | undefined>;
}

/** What every store is opened with, from the config (state.retention, remediation.cooldownSeconds, circuitBreaker.windowSeconds). */
export interface StoreOptions {
  readonly retentionMs: number;
  readonly cooldownMs: number;
  readonly failureWindowMs: number;
  readonly log: Logger;
  readonly now?: () => number;
  /** How often retention and pruning run (they also run at open). */
  readonly maintenanceMs?: number;
}

/**
 * Where state.retention cuts: runs last written before this are removed. It counts from the newest
 * run when the clock is past it, so a clock far ahead (a machine booted with a wrong date, before
 * NTP set it) does not take the journal with it; an idle journal is then kept longer, not less.
 */
export function retentionHorizon(nowMs: number, newestMs: number | null, retentionMs: number): number {
  return Math.floor(Math.min(nowMs, newestMs ?? nowMs) - retentionMs);
}

export interface RunOutcome {
  readonly remediation: string;
  readonly runId: string;
  readonly atMs: number;
  /** Set when the run executed (not a dry run, not refused): cooldowns start from it. */
  readonly executedLockKey: string | null;
  readonly result: 'success' | 'failure' | null;
}

export interface RunFilter {
  remediation?: string;
  status?: RunStatus;
  trigger?: Trigger;
}

export interface RunPage {
  runs: RunRecord[];
  /** Pass back as `cursor` for the next page; null when there is none. */
  next: string | null;
}

export interface RunPageJson {
  /** Each a run record as JSON. */
  runs: string[];
  next: string | null;
}

/** A cursor that no page of this store handed out; the HTTP layer answers 400 with the message. */
export class InvalidCursorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidCursorError';
  }
}
