import { open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256 } from '../../lazy.js';
import { ClaimTable } from './claim-table.js';
import { FileSink, LineWriter } from './line-writer.js';
import { HOST, otherProcessAlive } from './owner.js';
import { scanLines } from './segment-scan.js';
import type { GuardMemory, RunOutcome } from './store.js';
import { makeDirectory } from '../../systems/files/make-directory.js';

/**
 * The guards' memory of the file store, apart from the journal so that journal retention never
 * drops it. One small events file per process (`events-HOST-PID-START-N.jsonl`: several processes,
 * a server and `upkeep run`, may write at once) and a snapshot (`snapshot.jsonl`, the same
 * events, compacted). Start-up loads the snapshot and every events file; compaction prunes
 * what no guard needs any more, writes a new snapshot, and removes the events files it holds
 * (this process's and those of processes that are gone). Replaying an event twice changes
 * nothing, so a snapshot and an events file may overlap.
 */
export interface GuardFileOptions {
  readonly dir: string;
  readonly now: () => number;
  /** How long an alert claim is kept: a re-delivery after that runs again (subject to cooldown). */
  readonly claimTtlMs: number;
  /** At most this many claims; the oldest go first. */
  readonly claimLimit: number;
  readonly cooldownMs: number;
  readonly failureWindowMs: number;
}

export const CLAIM_TTL_MS = 7 * 86_400_000;
export const CLAIM_LIMIT = 50_000;
/**
 * How long a schedule tick's claim is kept, counted from its nominal time: it only has to outlive
 * the clocks' skew between replicas and how late a tick may fire, which is seconds, not a day.
 */
export const TICK_TTL_MS = 86_400_000;
// Only the count against circuitBreaker.failures matters; more than this is never needed.
const FAILURES_KEPT = 1000;
const SNAPSHOT = 'snapshot.jsonl';
const EVENTS = /^events-(.+)-(\d+)-(\d+)-(\d+)\.jsonl$/;
const FILE_HOST = HOST.replace(/[^A-Za-z0-9.]/g, '_');

/** Whether the process that writes this events file may still be writing it. */
function writerAlive(name: string): boolean {
  const [, host, pid] = EVENTS.exec(name) ?? [];
  return otherProcessAlive(host === FILE_HOST ? HOST : host, Number(pid));
}

type GuardEvent =
  | readonly ['claim', string, string, number]
  | readonly ['release', string, string]
  | readonly ['tick', string, string, number]
  | readonly ['outcome', string, string, number, string | null, 'success' | 'failure' | null];

/**
 * One events line, checked element by element: start-up reads tens of thousands of these, and
 * a schema library's copies of each would only make garbage.
 */
function parseEvent(text: string): GuardEvent | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (!Array.isArray(value)) return null;
  const [kind, first, second, at, lockKey, result]: unknown[] = value;
  if (typeof first !== 'string' || typeof second !== 'string') return null;
  if (kind === 'claim' && value.length === 4 && typeof at === 'number' && CLAIM_KEY.test(first)) return ['claim', first, second, at];
  if (kind === 'release' && value.length === 3 && CLAIM_KEY.test(first)) return ['release', first, second];
  if (kind === 'tick' && value.length === 4 && typeof at === 'number') return ['tick', first, second, at];
  const validResult = result === 'success' || result === 'failure' || result === null;
  if (kind === 'outcome' && value.length === 6 && typeof at === 'number' && (typeof lockKey === 'string' || lockKey === null) && validResult) {
    return ['outcome', first, second, at, lockKey, result];
  }
  return null;
}

/** A claim key as this store keeps it: 16 bytes of its SHA-256, base64url (22 characters). */
export function claimKey(key: string): string {
  return sha256(key).subarray(0, 16).toString('base64url');
}

const CLAIM_KEY = /^[A-Za-z0-9_-]{22}$/;

function tickKey(job: string, nominalMs: number): string {
  return JSON.stringify([job, nominalMs]);
}

interface Failure {
  readonly runId: string;
  readonly at: number;
}

export class GuardFile implements GuardMemory {
  private readonly claims = new ClaimTable();
  private readonly executed = new Map<string, number>();
  private readonly failures = new Map<string, Failure[]>();
  private readonly successes = new Map<string, number>();
  private readonly ticks = new Map<string, { readonly job: string; readonly runId: string; readonly nominalMs: number }>();
  private readonly started = Date.now();
  private generation = 0;
  private writer: LineWriter;
  private ownFile: string;
  /** Events files whose content is held in memory and that nobody writes any more. */
  private merged = new Set<string>();
  private compacting: Promise<void> | null = null;
  /** Whether anything happened since the last snapshot. */
  private changed = false;
  /** Lines that could not be read (a torn last line), per file. */
  readonly skipped: { file: string; lines: number }[] = [];

  private constructor(private readonly options: GuardFileOptions) {
    this.ownFile = this.nextOwnFile();
    this.writer = new LineWriter(new FileSink(this.ownFile));
  }

  static async open(options: GuardFileOptions): Promise<GuardFile> {
    const guards = new GuardFile(options);
    await guards.load();
    await guards.compact();
    return guards;
  }

  private nextOwnFile(): string {
    this.generation += 1;
    return join(this.options.dir, `events-${FILE_HOST}-${process.pid}-${this.started}-${this.generation}.jsonl`);
  }

  private async load(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.options.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    if (names.includes(SNAPSHOT)) {
      const snapshot = join(this.options.dir, SNAPSHOT);
      // A snapshot line is mostly a claim of about 80 bytes: room for them all up front.
      this.claims.reserve((await stat(snapshot).catch(() => ({ size: 0 }))).size / 80);
      await this.replayFile(snapshot);
    }
    for (const name of names.filter((entry) => EVENTS.test(entry)).sort()) {
      const file = join(this.options.dir, name);
      const alive = writerAlive(name);
      // A file vanishes when another process compacted it into the snapshot meanwhile.
      if (await this.replayFile(file, !alive) && !alive) this.merged.add(file);
    }
  }

  /**
   * Applies every event of a file; false when the file is gone. Half a last line is being
   * written when its writer lives, and torn (skipped) when it does not.
   */
  private async replayFile(file: string, finished = true): Promise<boolean> {
    let handle;
    try {
      handle = await open(file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    let bad = 0;
    try {
      const end = await scanLines(handle, 0, (line) => {
        if (line.length === 0) return;
        const parsed = parseEvent(line.toString('utf8'));
        if (parsed) this.apply(parsed);
        else bad += 1;
      });
      if (finished && end < (await handle.stat()).size) bad += 1;
    } finally {
      await handle.close();
    }
    if (bad > 0) this.skipped.push({ file, lines: bad });
    return true;
  }

  private apply(change: GuardEvent): void {
    switch (change[0]) {
      case 'claim':
        this.claims.add(change[1], change[2], change[3]);
        return;
      case 'release':
        if (this.claims.get(change[1]) === change[2]) this.claims.delete(change[1]);
        return;
      case 'tick': {
        const [, job, runId, nominalMs] = change;
        const key = tickKey(job, nominalMs);
        if (!this.ticks.has(key)) this.ticks.set(key, { job, runId, nominalMs });
        return;
      }
      case 'outcome': {
        const [, remediation, runId, at, lockKey, result] = change;
        if (lockKey !== null) this.executed.set(lockKey, Math.max(at, this.executed.get(lockKey) ?? 0));
        if (result === 'success') this.successes.set(remediation, Math.max(at, this.successes.get(remediation) ?? 0));
        if (result === 'failure') {
          const list = this.failures.get(remediation) ?? [];
          if (!list.some((failure) => failure.runId === runId && failure.at === at)) list.push({ runId, at });
          if (list.length > FAILURES_KEPT) list.splice(0, list.length - FAILURES_KEPT);
          this.failures.set(remediation, list);
        }
      }
    }
  }

  private async record(change: GuardEvent): Promise<void> {
    this.apply(change);
    this.changed = true;
    try {
      await this.writer.enqueue(JSON.stringify(change)).written;
    } catch (err) {
      this.takeBack(change);
      throw err;
    }
  }

  /**
   * A claim whose line was not written is given up: the caller was refused (the webhook is not
   * acknowledged, the tick does not run), so the re-delivery must be able to claim it. Kept, it
   * would turn every re-delivery into a duplicate of a run that never started, until its TTL.
   */
  private takeBack(change: GuardEvent): void {
    if (change[0] === 'claim' && this.claims.get(change[1]) === change[2]) this.claims.delete(change[1]);
    if (change[0] === 'tick') {
      const key = tickKey(change[1], change[3]);
      if (this.ticks.get(key)?.runId === change[2]) this.ticks.delete(key);
    }
  }

  async claimAlert(key: string, runId: string, atMs: number): Promise<string | undefined> {
    const hashed = claimKey(key);
    const existing = this.claims.get(hashed);
    if (existing !== undefined) return existing;
    // Decided here, synchronously, so two deliveries in flight at once cannot both claim it.
    await this.record(['claim', hashed, runId, atMs]);
    // A tenth below the limit, so the oldest are not sought out again at every new claim.
    if (this.claims.size > this.options.claimLimit) this.claims.prune(this.options.now() - this.options.claimTtlMs, Math.floor(this.options.claimLimit * 0.9));
    return undefined;
  }

  async releaseAlert(key: string, runId: string): Promise<void> {
    const hashed = claimKey(key);
    if (this.claims.get(hashed) !== runId) return;
    await this.record(['release', hashed, runId]);
  }

  async recordOutcome(outcome: RunOutcome): Promise<void> {
    if (outcome.executedLockKey === null && outcome.result === null) return;
    await this.record(['outcome', outcome.remediation, outcome.runId, outcome.atMs, outcome.executedLockKey, outcome.result]);
  }

  async lastExecuted(lockKey: string): Promise<number | undefined> {
    return this.executed.get(lockKey);
  }

  async recentFailures(remediation: string, sinceMs: number): Promise<number> {
    const after = Math.max(sinceMs, this.successes.get(remediation) ?? -Infinity);
    return (this.failures.get(remediation) ?? []).filter((failure) => failure.at > after).length;
  }

  async lastSuccesses(): Promise<ReadonlyMap<string, number>> {
    return new Map(this.successes);
  }

  async claimTick(job: string, nominalMs: number, runId: string): Promise<string | undefined> {
    const existing = this.ticks.get(tickKey(job, nominalMs));
    if (existing !== undefined) return existing.runId;
    // Applied synchronously by record(), so a second claim in flight already sees this one.
    await this.record(['tick', job, runId, nominalMs]);
    return undefined;
  }

  /** Drops what no guard can need any more; true when anything went. */
  private prune(): boolean {
    const before = this.size();
    this.claims.prune(this.options.now() - this.options.claimTtlMs, this.options.claimLimit);
    const now = this.options.now();
    const executedSince = now - Math.max(this.options.cooldownMs, this.options.claimTtlMs);
    for (const [lockKey, at] of this.executed) if (at < executedSince) this.executed.delete(lockKey);
    for (const [key, tick] of this.ticks) if (tick.nominalMs < now - TICK_TTL_MS) this.ticks.delete(key);
    for (const [remediation, list] of this.failures) {
      const after = Math.max(now - this.options.failureWindowMs, this.successes.get(remediation) ?? -Infinity);
      const recent = list.filter((failure) => failure.at > after);
      if (recent.length === 0) this.failures.delete(remediation);
      else this.failures.set(remediation, recent);
    }
    return this.size() !== before;
  }

  private size(): number {
    let failures = 0;
    for (const list of this.failures.values()) failures += list.length;
    return this.claims.size + this.executed.size + this.ticks.size + failures;
  }

  /** Prunes, writes a new snapshot, and removes the events files it now holds. */
  compact(): Promise<void> {
    this.compacting ??= this.compactOnce().finally(() => { this.compacting = null; });
    return this.compacting;
  }

  private async compactOnce(): Promise<void> {
    if (this.prune()) this.changed = true;
    if (!this.changed && this.merged.size === 0) return;
    this.changed = false;
    // New events go to a fresh file from here on; the old one is held by the snapshot below.
    const previous = this.writer;
    const previousFile = this.ownFile;
    this.ownFile = this.nextOwnFile();
    this.writer = new LineWriter(new FileSink(this.ownFile));
    await previous.close();
    await this.writeSnapshot();
    for (const file of [...this.merged, previousFile]) await unlink(file).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOENT') throw err; });
    this.merged = new Set();
  }

  private snapshotLines(): string[] {
    const lines: string[] = [];
    for (const claim of this.claims.list()) lines.push(JSON.stringify(['claim', claim.key, claim.runId, claim.at]));
    for (const [lockKey, at] of this.executed) lines.push(JSON.stringify(['outcome', '', '', at, lockKey, null]));
    for (const [remediation, at] of this.successes) lines.push(JSON.stringify(['outcome', remediation, '', at, null, 'success']));
    for (const tick of this.ticks.values()) lines.push(JSON.stringify(['tick', tick.job, tick.runId, tick.nominalMs]));
    for (const [remediation, list] of this.failures) for (const failure of list) lines.push(JSON.stringify(['outcome', remediation, failure.runId, failure.at, null, 'failure']));
    return lines;
  }

  private async writeSnapshot(): Promise<void> {
    await makeDirectory(this.options.dir);
    const target = join(this.options.dir, SNAPSHOT);
    const temporary = `${target}.${process.pid}.tmp`;
    const handle = await open(temporary, 'w');
    try {
      const lines = this.snapshotLines();
      // Written in slices, so a large snapshot never becomes one huge string.
      for (let start = 0; start < lines.length; start += 10_000) await handle.write(`${lines.slice(start, start + 10_000).join('\n')}\n`);
      await handle.datasync();
    } finally {
      await handle.close();
    }
    await rename(temporary, target);
    const directory = await open(this.options.dir, 'r');
    try {
      await directory.datasync();
    } finally {
      await directory.close();
    }
  }

  async close(): Promise<void> {
    if (this.compacting) await this.compacting;
    await this.writer.close();
  }
}
