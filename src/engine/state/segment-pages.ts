import { collectPage, parseRecord, readLines, sealedWalker, tailWalker, type Located, type PageSource } from './journal-page.js';
import { encodeCursor, type RunKey } from './run-key.js';
import { mayMatch } from './segment-index.js';
import type { SegmentSet } from './segment-set.js';
import type { RunFilter, RunPageJson } from './store.js';
import { TailIndex } from './tail-index.js';

/** Lines past this many bytes wait for the next page. */
const PAGE_BYTES = 4 * 1024 * 1024;
// Pages read at once; more wait their turn, so concurrent GET /runs cannot pile up pages in memory.
const CONCURRENT_PAGES = 4;
// Lines whose check is remembered: two pages of the largest size (about 0.5 MB).
const CHECKED_LINES = 2000;

/**
 * GET /runs over the segments: a page walks the indexes newest first and reads only the lines it
 * returns, each checked against the record schema and passed on as it is, so a reply costs
 * little memory.
 */
export class SegmentPages {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  /**
   * The lines that passed the check, by run id, offset, length and file; the most recently read
   * last. A journal line never changes once written (segments are appended to and removed whole),
   * so a line read again, as the first page is by every dashboard and operator that polls it, is
   * not parsed again: parsing was about half of a page's CPU.
   */
  private readonly checked = new Set<string>();

  constructor(private readonly segments: SegmentSet) {}

  /** The page of runs matching `filter` that come before the key `before` (the newest first when null). */
  async read(filter: RunFilter, before: RunKey | null, limit: number): Promise<RunPageJson> {
    await this.turn();
    try {
      const { picked, next } = await collectPage(this.sources(filter), filter, before, { runs: limit, bytes: PAGE_BYTES }, async (located) => {
        const latest = await this.segments.locate(located.entry);
        return latest?.file === located.file && latest.entry.offset === located.entry.offset;
      });
      const lines = await readLines(picked);
      const runs: string[] = [];
      lines.forEach((line, at) => {
        const located = picked[at];
        if (line !== undefined && located && this.check(located, line)) runs.push(line);
      });
      return { runs, next: next ? encodeCursor(next) : null };
    } finally {
      this.done();
    }
  }

  private check({ file, entry }: Located, line: string): boolean {
    const key = `${entry.id}\u0000${entry.offset}\u0000${line.length}\u0000${file}`;
    if (!this.checked.delete(key) && !parseRecord(line, entry.id)) return false;
    this.checked.add(key);
    if (this.checked.size > CHECKED_LINES) this.checked.delete(this.checked.values().next().value ?? '');
    return true;
  }

  private async turn(): Promise<void> {
    if (this.active >= CONCURRENT_PAGES) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active += 1;
  }

  private done(): void {
    this.active -= 1;
    this.waiting.shift()?.();
  }

  /** The segments that can hold runs matching the filter: one where no (status, trigger, remediation) matches is skipped. */
  private sources(filter: RunFilter): PageSource[] {
    const sources: PageSource[] = [];
    const { cache } = this.segments;
    for (const segment of this.segments.sealed) {
      const { header } = segment;
      if (!header.minKey || !header.maxKey || !mayMatch(header.combos, filter)) continue;
      sources.push({
        minKey: header.minKey, maxKey: header.maxKey,
        walk: async (before, walkFilter) => {
          // Held until the page is done: the walker reads the index between awaits.
          const slot = await cache.pin(segment.indexFile);
          const release = () => cache.unpin(slot);
          if (slot.index) return sealedWalker(slot.index, segment.file, before, walkFilter, release);
          release();
          return tailWalker(new TailIndex(), segment.file, null, walkFilter);
        },
      });
    }
    for (const tail of this.segments.tails) {
      const first = tail.index.sorted[0];
      const last = tail.index.sorted.at(-1);
      if (!first || !last || !mayMatch(tail.index.combos.masks(), filter)) continue;
      sources.push({ minKey: first, maxKey: last, walk: async (before, walkFilter) => tailWalker(tail.index, tail.file, before, walkFilter) });
    }
    return sources;
  }
}
