import type { Logger } from '../log.js';
import type { SuccessRecord, SuccessRecords } from './state/store.js';

// A scrape reads the shared records at most this often; a success this replica records is seen at once.
const REFRESH_MS = 30_000;
// How long a scrape waits for a refresh before it is served what was read last (the refresh goes on).
const WAIT_MS = 2_000;

interface Cached {
  bySubject: Map<string, SuccessRecord>;
  readAtMs: number;
  reading: Promise<void> | null;
}

/**
 * The shared success records as the collectors see them: read again at most every REFRESH_MS
 * per remediation, updated at once by what this replica records. When the state database cannot
 * be read, what was read last is kept (a success never becomes untrue) and it is logged once,
 * until a read works again.
 */
export class SuccessCache {
  private readonly cached = new Map<string, Cached>();
  private failing = false;

  constructor(
    private readonly records: SuccessRecords,
    private readonly log: Logger,
    private readonly now: () => number = () => performance.now(),
    private readonly refreshMs = REFRESH_MS,
  ) {}

  /** Writes the record to the shared store, then keeps it here. */
  async record(success: SuccessRecord): Promise<void> {
    await this.records.record(success);
    keepNewest(this.entry(success.remediation).bySubject, [success]);
  }

  /** The remediation's newest success per subject. */
  async read(remediation: string): Promise<ReadonlyMap<string, SuccessRecord>> {
    const entry = this.entry(remediation);
    if (this.now() - entry.readAtMs >= this.refreshMs) entry.reading ??= this.refresh(remediation, entry);
    if (entry.reading) await waitAtMost(entry.reading, WAIT_MS);
    return entry.bySubject;
  }

  private entry(remediation: string): Cached {
    let entry = this.cached.get(remediation);
    if (!entry) {
      entry = { bySubject: new Map(), readAtMs: Number.NEGATIVE_INFINITY, reading: null };
      this.cached.set(remediation, entry);
    }
    return entry;
  }

  /** Merged rather than replaced: a record this replica made while the read was in flight stays. */
  private async refresh(remediation: string, entry: Cached): Promise<void> {
    try {
      keepNewest(entry.bySubject, await this.records.read(remediation));
      if (this.failing) this.log.info({ remediation }, 'the state database\'s success records are read again');
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.log.warn({ err, remediation }, 'cannot read the success records from the state database; the collectors report what this replica knows (backup verify times: its state.dir) until it can');
      this.failing = true;
    } finally {
      // A failed read is tried again after the same interval, not at every scrape.
      entry.readAtMs = this.now();
      entry.reading = null;
    }
  }
}

function keepNewest(bySubject: Map<string, SuccessRecord>, records: readonly SuccessRecord[]): void {
  for (const record of records) {
    const kept = bySubject.get(record.subject);
    if (!kept || kept.atMs < record.atMs) bySubject.set(record.subject, record);
  }
}

async function waitAtMost(work: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work, new Promise<void>((resolve) => { timer = setTimeout(resolve, ms); })]);
  clearTimeout(timer);
}
