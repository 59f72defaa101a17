import { open } from 'node:fs/promises';
import { z } from 'zod';
import { RUN_STATUSES, TRIGGERS } from '../journal.js';
import type { RunStatus } from '../journal.js';
import type { Trigger } from '../../actions/contract.js';
import { idTime } from './run-id.js';
import { compareKeys, ID_BYTES, type RunKey } from './run-key.js';

/**
 * The on-disk index of a sealed journal segment, so GET /runs and GET /runs/:id never scan the
 * journal: a JSON header (what the segment holds, for skipping it) and one fixed-size entry per
 * run, sorted by key, pointing at the run's last line in the segment. Layout:
 *   "UPKIDX1\n", u32 header length, header JSON, entries (ENTRY_BYTES each).
 * Entry: f64 time, f64 line offset, u32 line length, u8 status, u8 trigger, u16 remediation
 * (an index into header.remediations), then the id (UTF-8, NUL-padded to ID_BYTES).
 */
const MAGIC = Buffer.from('UPKIDX1\n');
export const ENTRY_BYTES = 64;
const ID_AT = 24;

/** A run's last line in a segment, with what filters need. */
export interface IndexEntry {
  readonly time: number;
  readonly id: string;
  readonly offset: number;
  readonly length: number;
  readonly status: RunStatus;
  readonly trigger: Trigger;
  readonly remediation: string;
}

const key = z.object({ time: z.number(), id: z.string() });
const headerSchema = z.object({
  version: z.literal(1),
  /** How many bytes of the segment the entries cover; lines past it were appended late. */
  bytes: z.number().int().nonnegative(),
  count: z.number().int().nonnegative(),
  minKey: key.nullable(),
  maxKey: key.nullable(),
  /** The newest line's time (finishedAt, startedAt or queuedAt): retention drops the segment after it. */
  lastLineMs: z.number(),
  remediations: z.array(z.string()),
  /**
   * Which (status, trigger, remediation) the segment holds, so a filter none matches skips it:
   * per remediation, one number per trigger (in TRIGGERS order) with a bit per status.
   */
  combos: z.array(z.tuple([z.string(), z.array(z.number().int().nonnegative())])),
  /** Runs still queued or running, in this segment or an older one, when it was sealed. */
  open: z.array(key),
  /** Whether any id is not time-ordered, so a lookup by such an id must search this segment. */
  legacyIds: z.boolean(),
  skippedLines: z.number().int().nonnegative(),
});
export type IndexHeader = z.infer<typeof headerSchema>;

/** The header facts derived from a set of entries; the caller adds bytes, lastLineMs, open and skippedLines. */
export function summarise(entries: readonly IndexEntry[]): Pick<IndexHeader, 'count' | 'minKey' | 'maxKey' | 'remediations' | 'combos' | 'legacyIds'> {
  const remediations = [...new Set(entries.map((entry) => entry.remediation))].sort();
  const combos = new Combos();
  let legacyIds = false;
  for (const entry of entries) {
    combos.add(entry, 1);
    if (idTime(entry.id) === null) legacyIds = true;
  }
  const first = entries[0];
  const last = entries.at(-1);
  return {
    count: entries.length, remediations, combos: combos.masks(), legacyIds,
    minKey: first ? { time: first.time, id: first.id } : null,
    maxKey: last ? { time: last.time, id: last.id } : null,
  };
}

/** Runs counted by (status, trigger, remediation); the counts let a run's entry change its state. */
export class Combos {
  private readonly counts = new Map<string, number>();
  private readonly parts = new Map<string, Pick<IndexEntry, 'status' | 'trigger' | 'remediation'>>();

  add(entry: Pick<IndexEntry, 'status' | 'trigger' | 'remediation'>, change: number): void {
    // Status and trigger never hold a newline, so this key is unambiguous.
    const key = `${entry.status}\n${entry.trigger}\n${entry.remediation}`;
    const count = (this.counts.get(key) ?? 0) + change;
    if (count === 0) {
      this.counts.delete(key);
      this.parts.delete(key);
    } else {
      this.counts.set(key, count);
      if (!this.parts.has(key)) this.parts.set(key, { status: entry.status, trigger: entry.trigger, remediation: entry.remediation });
    }
  }

  /** The header's form: per remediation, a status bit mask per trigger. */
  masks(): IndexHeader['combos'] {
    const masks = new Map<string, number[]>();
    for (const { status, trigger, remediation } of this.parts.values()) {
      const perTrigger = masks.get(remediation) ?? TRIGGERS.map(() => 0);
      const at = TRIGGERS.indexOf(trigger);
      perTrigger[at] = (perTrigger[at] ?? 0) | (1 << RUN_STATUSES.indexOf(status));
      masks.set(remediation, perTrigger);
    }
    return [...masks];
  }
}

/** Whether any run of these combinations can match the filter. */
export function mayMatch(masks: IndexHeader['combos'], filter: { status?: RunStatus; trigger?: Trigger; remediation?: string }): boolean {
  const statusBits = filter.status === undefined ? ~0 : 1 << RUN_STATUSES.indexOf(filter.status);
  const triggerAt = filter.trigger === undefined ? -1 : TRIGGERS.indexOf(filter.trigger);
  return masks.some(([remediation, perTrigger]) => (filter.remediation === undefined || remediation === filter.remediation)
    && perTrigger.some((bits, at) => (triggerAt === -1 || at === triggerAt) && (bits & statusBits) !== 0));
}

/** Encodes entries (already sorted by key) under a header. */
export function encodeIndex(header: IndexHeader, entries: readonly IndexEntry[]): Buffer {
  return Buffer.concat([encodeHeader(header), encodeEntries(header, entries)]);
}

export function encodeHeader(header: IndexHeader): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const out = Buffer.alloc(MAGIC.length + 4 + json.length);
  MAGIC.copy(out, 0);
  out.writeUInt32LE(json.length, MAGIC.length);
  json.copy(out, MAGIC.length + 4);
  return out;
}

/** The entries part of an index; remediations are coded by their place in header.remediations. */
export function encodeEntries(header: IndexHeader, entries: readonly IndexEntry[]): Buffer {
  const out = Buffer.alloc(entries.length * ENTRY_BYTES);
  const codes = new Map(header.remediations.map((name, index) => [name, index]));
  entries.forEach((entry, i) => {
    const at = i * ENTRY_BYTES;
    out.writeDoubleLE(entry.offset, at + 8);
    out.writeUInt32LE(entry.length, at + 16);
    out.writeUInt8(RUN_STATUSES.indexOf(entry.status), at + 20);
    out.writeUInt8(TRIGGERS.indexOf(entry.trigger), at + 21);
    out.writeUInt16LE(codes.get(entry.remediation) ?? 0, at + 22);
    setEntryKey(out, i, entry);
  });
  return out;
}

/** Writes entry i's key into an entries part (a bulk writer re-keys a template this way). */
export function setEntryKey(entries: Buffer, i: number, key: RunKey): void {
  const at = i * ENTRY_BYTES;
  entries.writeDoubleLE(key.time, at);
  entries.fill(0, at + ID_AT, at + ENTRY_BYTES);
  entries.write(key.id, at + ID_AT, ID_BYTES, 'utf8');
}

function parseHeader(buffer: Buffer, file: string): { header: IndexHeader; entriesAt: number } {
  if (buffer.length < MAGIC.length + 4 || !buffer.subarray(0, MAGIC.length).equals(MAGIC)) throw new Error(`${file}: not a journal index`);
  const length = buffer.readUInt32LE(MAGIC.length);
  const entriesAt = MAGIC.length + 4 + length;
  if (buffer.length < entriesAt) throw new Error(`${file}: index header is truncated`);
  const header = headerSchema.parse(JSON.parse(buffer.subarray(MAGIC.length + 4, entriesAt).toString('utf8')));
  return { header, entriesAt };
}

/** Reads only the header (what start-up needs of every sealed segment). */
export async function readIndexHeader(file: string): Promise<IndexHeader> {
  const handle = await open(file, 'r');
  try {
    const prefix = Buffer.alloc(MAGIC.length + 4);
    await handle.read(prefix, 0, prefix.length, 0);
    if (!prefix.subarray(0, MAGIC.length).equals(MAGIC)) throw new Error(`${file}: not a journal index`);
    const length = prefix.readUInt32LE(MAGIC.length);
    const whole = Buffer.alloc(prefix.length + length);
    prefix.copy(whole, 0);
    const { bytesRead } = await handle.read(whole, prefix.length, length, prefix.length);
    if (bytesRead !== length) throw new Error(`${file}: index header is truncated`);
    return parseHeader(whole, file).header;
  } finally {
    await handle.close();
  }
}

/** A loaded index: entries read straight from the buffer, never copied into objects wholesale. */
export class SegmentIndex {
  readonly header: IndexHeader;
  readonly count: number;
  private readonly entriesAt: number;

  constructor(private readonly buffer: Buffer, file: string) {
    const parsed = parseHeader(buffer, file);
    this.header = parsed.header;
    this.entriesAt = parsed.entriesAt;
    this.count = Math.floor((buffer.length - this.entriesAt) / ENTRY_BYTES);
    if (this.count !== this.header.count) throw new Error(`${file}: index holds ${this.count} entries, its header says ${this.header.count}`);
  }

  get byteLength(): number {
    return this.buffer.length;
  }

  private at(i: number): number {
    return this.entriesAt + i * ENTRY_BYTES;
  }

  time(i: number): number {
    return this.buffer.readDoubleLE(this.at(i));
  }

  id(i: number): string {
    const start = this.at(i) + ID_AT;
    const end = this.buffer.indexOf(0, start);
    return this.buffer.toString('utf8', start, end === -1 || end > start + ID_BYTES ? start + ID_BYTES : end);
  }

  statusCode(i: number): number {
    return this.buffer.readUInt8(this.at(i) + 20);
  }

  triggerCode(i: number): number {
    return this.buffer.readUInt8(this.at(i) + 21);
  }

  remediationCode(i: number): number {
    return this.buffer.readUInt16LE(this.at(i) + 22);
  }

  entry(i: number): IndexEntry {
    const at = this.at(i);
    return {
      time: this.time(i), id: this.id(i),
      offset: this.buffer.readDoubleLE(at + 8), length: this.buffer.readUInt32LE(at + 16),
      status: RUN_STATUSES[this.statusCode(i)] ?? 'queued', trigger: TRIGGERS[this.triggerCode(i)] ?? 'manual',
      remediation: this.header.remediations[this.remediationCode(i)] ?? '',
    };
  }

  /** The first position whose key is not less than `key` (count when there is none). */
  lowerBound(key: RunKey): number {
    let low = 0;
    let high = this.count;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (compareKeys({ time: this.time(middle), id: this.id(middle) }, key) < 0) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** The entry of exactly this key, if the segment has it. */
  find(key: RunKey): IndexEntry | undefined {
    const at = this.lowerBound(key);
    if (at >= this.count || this.time(at) !== key.time || this.id(at) !== key.id) return undefined;
    return this.entry(at);
  }

  /** The entry of this id, searched entry by entry (ids from before time-ordered ids). */
  findId(id: string): IndexEntry | undefined {
    for (let i = 0; i < this.count; i += 1) if (this.id(i) === id) return this.entry(i);
    return undefined;
  }
}
