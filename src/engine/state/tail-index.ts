import { isFinished } from '../journal.js';
import { compareKeys, type RunKey } from './run-key.js';
import { Combos, type IndexEntry } from './segment-index.js';
import { eachLine, parseLine, type ParsedLine } from './segment-scan.js';

/**
 * The index of a segment that is still written to (or has just been rotated away from), kept in
 * memory. Bounded by the segment's own limits (bytes, runs, age), so memory never grows with the
 * journal. `bytes` is how far the file has been read; each line moves the run's entry to it.
 */
export class TailIndex {
  private readonly byId = new Map<string, IndexEntry>();
  /** Entries by key, ascending: mostly appended at the end, as ids are time-ordered. */
  readonly sorted: IndexEntry[] = [];
  readonly combos = new Combos();
  /** Counts entries put anywhere but at the end, which moves the ones after them. */
  inserts = 0;
  bytes = 0;
  firstLineMs: number | null = null;
  lastLineMs = 0;
  skippedLines = 0;
  /**
   * The lines of this process's batches appended since the file was last looked at (see
   * SegmentSet.readTail), parsed as they were written, at the offsets they have if nothing else
   * was appended meanwhile; `writtenEnd` is the offset past the last of them.
   */
  private written: ParsedLine[] = [];
  private writtenBytes = 0;
  private writtenEnd = 0;

  get runs(): number {
    return this.sorted.length;
  }

  get(id: string): IndexEntry | undefined {
    return this.byId.get(id);
  }

  /**
   * A batch of whole lines this process appended to the segment. Its lines are parsed now, a batch
   * at a time: parsed at the next look, a second's lines at 1,000 alerts/s held the event loop
   * about 10 ms once a second (docs/performance.md, "Own lines indexed as they are written").
   */
  wrote(batch: Buffer): void {
    this.writtenEnd = eachLine(batch, this.bytes + this.writtenBytes, (line, offset) => { this.written.push(parseLine(line, offset)); });
    this.writtenBytes += batch.length;
  }

  /**
   * Whether the segment may have reached `bytes` or `runs` with what this process wrote since the
   * last look counted too: an upper bound (each line counted as a run), so that a writer that
   * does not look before every batch still looks in time to rotate the segment at its limits.
   */
  mayHold(bytes: number, runs: number): boolean {
    return this.bytes + this.writtenBytes >= bytes || this.runs + this.written.length >= runs;
  }

  /**
   * Indexes this process's batches without reading them back when the file grew by exactly their
   * bytes since `bytes`: appends are whole batches, so nothing of another process lies between
   * them. Otherwise (another process appended too, or a torn line was terminated) they are
   * forgotten and the caller reads the file. Either way the next look starts afresh.
   */
  takeWritten(size: number): boolean {
    const { written, writtenBytes, writtenEnd } = this;
    this.written = [];
    this.writtenBytes = 0;
    if (writtenBytes === 0 || size !== this.bytes + writtenBytes) return false;
    for (const parsed of written) this.take(parsed);
    this.bytes = writtenEnd;
    return true;
  }

  /** Takes one complete line read at `offset`. */
  addLine(line: Buffer, offset: number): void {
    this.take(parseLine(line, offset));
  }

  private take(parsed: ParsedLine): void {
    if (parsed.kind === 'invalid') this.skippedLines += 1;
    if (parsed.kind !== 'run') return;
    this.firstLineMs ??= parsed.lineMs;
    this.lastLineMs = Math.max(this.lastLineMs, parsed.lineMs);
    this.put(parsed.entry);
  }

  private put(entry: IndexEntry): void {
    const previous = this.byId.get(entry.id);
    if (previous) {
      this.combos.add(previous, -1);
      // A later line of a run carries another queuedAt only if hand-edited: the run keeps its place.
      const kept = entry.time === previous.time ? entry : { ...entry, time: previous.time };
      this.sorted[this.lowerBound(previous)] = kept;
      this.byId.set(entry.id, kept);
    } else {
      const last = this.sorted.at(-1);
      if (!last || compareKeys(last, entry) < 0) this.sorted.push(entry);
      else {
        this.sorted.splice(this.lowerBound(entry), 0, entry);
        this.inserts += 1;
      }
      this.byId.set(entry.id, entry);
    }
    this.combos.add(entry, 1);
  }

  lowerBound(key: RunKey): number {
    let low = 0;
    let high = this.sorted.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      const entry = this.sorted[middle];
      if (entry && compareKeys(entry, key) < 0) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  unfinished(): IndexEntry[] {
    return this.sorted.filter((entry) => !isFinished(entry.status));
  }
}
