import { open } from 'node:fs/promises';
import { isFinished, RUN_STATUSES, runRecordSchema, TRIGGERS } from '../journal.js';
import type { RunRecord } from '../journal.js';
import { compareKeys, type RunKey } from './run-key.js';
import type { IndexEntry, SegmentIndex } from './segment-index.js';
import type { RunFilter } from './store.js';
import type { TailIndex } from './tail-index.js';

/** An index entry and the segment file its line is in. */
export interface Located {
  readonly entry: IndexEntry;
  readonly file: string;
}

/** One segment's matching entries, newest first, from below a key. */
interface Walker {
  head: Located | null;
  advance(): void;
  /** The page is done with this segment (its index may leave memory). */
  release(): void;
}

/** A segment that may hold entries of the page: its key range, and how to walk it (loading its index). */
export interface PageSource {
  readonly minKey: RunKey;
  readonly maxKey: RunKey;
  walk(before: RunKey | null, filter: RunFilter): Promise<Walker>;
}

/** Walks a sealed segment's on-disk index without decoding entries the filter rejects. */
export function sealedWalker(index: SegmentIndex, file: string, before: RunKey | null, filter: RunFilter, release: () => void): Walker {
  const status = filter.status === undefined ? -1 : RUN_STATUSES.indexOf(filter.status);
  const trigger = filter.trigger === undefined ? -1 : TRIGGERS.indexOf(filter.trigger);
  const remediation = filter.remediation === undefined ? -1 : index.header.remediations.indexOf(filter.remediation);
  let position = (before === null ? index.count : index.lowerBound(before)) - 1;
  const walker: Walker = {
    head: null,
    release,
    advance() {
      walker.head = null;
      for (; position >= 0; position -= 1) {
        if (status !== -1 && index.statusCode(position) !== status) continue;
        if (trigger !== -1 && index.triggerCode(position) !== trigger) continue;
        if (remediation !== -1 && index.remediationCode(position) !== remediation) continue;
        walker.head = { entry: index.entry(position), file };
        position -= 1;
        return;
      }
    },
  };
  walker.advance();
  return walker;
}

function matches(entry: IndexEntry, filter: RunFilter): boolean {
  return (filter.status === undefined || entry.status === filter.status)
    && (filter.trigger === undefined || entry.trigger === filter.trigger)
    && (filter.remediation === undefined || entry.remediation === filter.remediation);
}

export function tailWalker(tail: TailIndex, file: string, before: RunKey | null, filter: RunFilter): Walker {
  // The tail grows while a page is read (appends at its end do not move what the walk has yet
  // to see; an entry put in the middle does, and the walk finds its place again).
  let inserts = tail.inserts;
  let below = before;
  let position = (below === null ? tail.sorted.length : tail.lowerBound(below)) - 1;
  const walker: Walker = {
    head: null,
    release: () => undefined,
    advance() {
      walker.head = null;
      if (tail.inserts !== inserts) {
        inserts = tail.inserts;
        position = (below === null ? tail.sorted.length : tail.lowerBound(below)) - 1;
      }
      for (; position >= 0; position -= 1) {
        const entry = tail.sorted[position];
        if (!entry) continue;
        below = entry;
        if (!matches(entry, filter)) continue;
        walker.head = { entry, file };
        position -= 1;
        return;
      }
    },
  };
  walker.advance();
  return walker;
}

function best(walkers: readonly Walker[]): Walker | null {
  let found: Walker | null = null;
  for (const walker of walkers) {
    if (walker.head && (!found?.head || compareKeys(walker.head.entry, found.head.entry) > 0)) found = walker;
  }
  return found;
}

export interface PageLimits {
  readonly runs: number;
  /** Lines past this many bytes wait for the next page, so one page cannot hold the heap. */
  readonly bytes: number;
}

/**
 * Merges the segments' entries newest first, opening a segment only once the page reaches its
 * range. A run whose line in a segment is not final may have a later line elsewhere: `isLatest`
 * says whether this is the run's state, so each run appears once, with its last state.
 */
export async function collectPage(
  sources: readonly PageSource[], filter: RunFilter, before: RunKey | null, limits: PageLimits,
  isLatest: (located: Located) => Promise<boolean>,
): Promise<{ picked: Located[]; next: RunKey | null }> {
  const below = (key: RunKey) => (before !== null && compareKeys(key, before) >= 0 ? before : key);
  const candidates = sources.filter((source) => before === null || compareKeys(source.minKey, before) < 0)
    .sort((a, b) => compareKeys(below(b.maxKey), below(a.maxKey)));
  const walkers: Walker[] = [];
  const picked: Located[] = [];
  let bytes = 0;
  let opened = 0;
  try {
    for (;;) {
      let top = best(walkers);
      for (let candidate = candidates[opened]; candidate && (!top?.head || compareKeys(below(candidate.maxKey), top.head.entry) >= 0); candidate = candidates[opened]) {
        const walker = await candidate.walk(before, filter);
        if (walker.head) walkers.push(walker);
        else walker.release();
        opened += 1;
        top = best(walkers);
      }
      const head = top?.head;
      if (!top || !head) return { picked, next: null };
      const last = picked.at(-1);
      if (last && (picked.length >= limits.runs || bytes >= limits.bytes)) return { picked, next: last.entry };
      top.advance();
      // A segment walked to its end leaves the page's hold at once, so a long walk holds few indexes.
      if (!top.head) top.release();
      if (isFinished(head.entry.status) || await isLatest(head)) {
        picked.push(head);
        bytes += head.entry.length;
      }
    }
  } finally {
    for (const walker of walkers) if (walker.head) walker.release();
  }
}

// Lines closer than this are read in one go: a page's lines mostly sit near each other.
const READ_GAP = 64 * 1024;
const READ_SPAN = 128 * 1024;
const SPARE_BUFFERS = 4;

// Read buffers are kept and used again: a buffer per read, freed and allocated anew for every
// page, would fragment the process's memory and keep its RSS growing while paging.
const spareBuffers: Buffer[] = [];

function readBuffer(bytes: number): Buffer {
  return bytes <= READ_SPAN ? spareBuffers.pop() ?? Buffer.allocUnsafe(READ_SPAN) : Buffer.allocUnsafe(bytes);
}

/**
 * Reads the lines the entries point at, in the entries' order, one read per run of nearby
 * lines. A line whose file went away with retention is undefined.
 */
export async function readLines(located: readonly Located[]): Promise<(string | undefined)[]> {
  const lines: (string | undefined)[] = located.map(() => undefined);
  const byFile = new Map<string, number[]>();
  located.forEach((item, at) => {
    const positions = byFile.get(item.file);
    if (positions) positions.push(at);
    else byFile.set(item.file, [at]);
  });
  for (const [file, positions] of byFile) {
    let handle;
    try {
      handle = await open(file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    try {
      const ordered = positions.sort((a, b) => (located[a]?.entry.offset ?? 0) - (located[b]?.entry.offset ?? 0));
      for (let first = 0; first < ordered.length;) {
        const start = located[ordered[first] ?? 0]?.entry.offset ?? 0;
        let end = start;
        let last = first;
        for (; last < ordered.length; last += 1) {
          const entry = located[ordered[last] ?? 0]?.entry;
          if (!entry || (last > first && (entry.offset - end > READ_GAP || entry.offset + entry.length - start > READ_SPAN))) break;
          end = Math.max(end, entry.offset + entry.length);
        }
        const buffer = readBuffer(end - start);
        const { bytesRead } = await handle.read(buffer, 0, end - start, start);
        for (let i = first; i < last; i += 1) {
          const at = ordered[i] ?? 0;
          const entry = located[at]?.entry;
          if (entry && entry.offset + entry.length - start <= bytesRead) lines[at] = buffer.toString('utf8', entry.offset - start, entry.offset - start + entry.length);
        }
        if (buffer.length === READ_SPAN && spareBuffers.length < SPARE_BUFFERS) spareBuffers.push(buffer);
        first = last;
      }
    } finally {
      await handle.close();
    }
  }
  return lines;
}

/** The run record a line holds, if it is one (and of that run, when `id` is given): every line read back is checked. */
export function parseRecord(line: string | undefined, id?: string): RunRecord | undefined {
  if (line === undefined) return undefined;
  try {
    const parsed = runRecordSchema.safeParse(JSON.parse(line));
    return parsed.success && (id === undefined || parsed.data.id === id) ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
