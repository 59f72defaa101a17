import type { FileHandle } from 'node:fs/promises';
import { RUN_STATUSES, TRIGGERS } from '../journal.js';
import { idTime } from './run-id.js';
import { ID_BYTES, runKey } from './run-key.js';
import type { IndexEntry } from './segment-index.js';

const CHUNK_BYTES = 1 << 20;
const MIN_BUFFER_BYTES = 4096;
const NEWLINE = 0x0a;

export interface ScanLimits {
  /** Stop after about this many bytes. */
  readonly maxBytes?: number;
  /**
   * How many bytes the caller expects to find (the file's size past `from`). The buffer is sized
   * to it, up to a chunk: a journal reads back each write batch of a few KB, and a fresh 1 MB
   * buffer per batch was most of the webhook's garbage (docs/performance.md, "Webhook benchmark").
   */
  readonly expectedBytes?: number;
}

/**
 * Reads the complete lines of a segment from `from` on, a chunk at a time, so memory holds one
 * chunk (or one long line), never the file. A last line without its newline is not complete: it
 * is either being written by another process or torn by a crash, and is left for later.
 * Returns the offset just past the last complete line.
 */
export async function scanLines(handle: FileHandle, from: number, onLine: (line: Buffer, offset: number) => void, limits: ScanLimits = {}): Promise<number> {
  const maxBytes = limits.maxBytes ?? Infinity;
  // One buffer for the whole scan: lines are handed out as views of it, valid during the call.
  let buffer = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, Math.max(MIN_BUFFER_BYTES, limits.expectedBytes ?? CHUNK_BYTES)));
  let carried = 0;
  let position = from;
  let lineStart = from;
  for (;;) {
    if (carried === buffer.length) {
      // A line longer than the buffer: make room for the rest of it.
      const bigger = Buffer.allocUnsafe(buffer.length * 2);
      buffer.copy(bigger, 0, 0, carried);
      buffer = bigger;
    }
    const { bytesRead } = await handle.read(buffer, carried, buffer.length - carried, position);
    if (bytesRead === 0) break;
    position += bytesRead;
    const end = carried + bytesRead;
    // Only the bytes read are searched: past them lies whatever the buffer held before.
    const next = eachLine(buffer.subarray(0, end), lineStart, onLine);
    const start = next - lineStart;
    lineStart = next;
    buffer.copy(buffer, 0, start, end);
    carried = end - start;
    if (lineStart - from >= maxBytes) break;
  }
  return lineStart;
}

/** Hands on each newline-terminated line of `bytes`, which start at `offset`; returns the offset past the last one. */
export function eachLine(bytes: Buffer, offset: number, onLine: (line: Buffer, offset: number) => void): number {
  let start = 0;
  for (let newline = bytes.indexOf(NEWLINE); newline !== -1; newline = bytes.indexOf(NEWLINE, start)) {
    onLine(bytes.subarray(start, newline), offset + start);
    start = newline + 1;
  }
  return offset + start;
}

export type ParsedLine = { kind: 'blank' } | { kind: 'invalid' } | { kind: 'run'; entry: IndexEntry; lineMs: number };

/** A check of one of `values` that allocates nothing (a zod enum's safeParse makes a result per call, three per run). */
function oneOf<T extends string>(values: readonly T[]): (value: unknown) => value is T {
  const members: ReadonlySet<unknown> = new Set(values);
  return (value): value is T => members.has(value);
}
const isTrigger = oneOf(TRIGGERS);
const isStatus = oneOf(RUN_STATUSES);

// upkeep writes a record's first keys in this order; a line that starts so and ends with "}" is
// indexed without parsing it whole (a torn line never ends with "}": see endWithNewline).
const OWN_LINE = /^\{"id":"([0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})","remediation":"([^"\\]*)","trigger":"([a-z]+)","status":"([a-z_]+)",/;
const FINISHED_LAST = /"finishedAt":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"\}$/;
const CLOSING_BRACE = 0x7d;
const ID_START = '{"id":"'.length;

/**
 * What one journal line contributes to the index. Only the fields an index needs are checked
 * here (the whole record is checked with runRecordSchema when it is read), so indexing the
 * segment being written at start makes little garbage: upkeep's own lines are matched, any
 * other line is parsed and checked field by field.
 */
export function parseLine(line: Buffer, offset: number): ParsedLine {
  if (line[line.length - 1] === CLOSING_BRACE) {
    const own = OWN_LINE.exec(line.toString('latin1', 0, 256));
    const trigger = own?.[3];
    const status = own?.[4];
    // The id copied out of the line rather than taken from the match: a match's group is a slice
    // that keeps the whole 256-character head of the line alive for as long as the index holds the
    // entry (77,531 such slices in the heap after 45 s at 1,000 alerts/s).
    const id = own?.[1] === undefined ? undefined : line.toString('latin1', ID_START, ID_START + own[1].length);
    const time = id === undefined ? null : idTime(id);
    if (id !== undefined && time !== null && own?.[2] !== undefined && isTrigger(trigger) && isStatus(status)) {
      // The line's time is its finishedAt when that is the last key (as upkeep writes it), else the run's.
      const finished = FINISHED_LAST.exec(line.toString('latin1', Math.max(0, line.length - 64)));
      const remediation = Buffer.from(own[2], 'latin1').toString('utf8');
      return { kind: 'run', lineMs: finished?.[1] ? Date.parse(finished[1]) : time, entry: { time, id, offset, length: line.length, status, trigger, remediation } };
    }
  }
  return parseAnyLine(line, offset);
}

function parseAnyLine(line: Buffer, offset: number): ParsedLine {
  const text = line.toString('utf8');
  if (text.trim() === '') return { kind: 'blank' };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { kind: 'invalid' };
  }
  if (typeof value !== 'object' || value === null) return { kind: 'invalid' };
  const field = (name: string): unknown => Reflect.get(value, name);
  const [id, remediation, queuedAt, startedAt, finishedAt] = ['id', 'remediation', 'queuedAt', 'startedAt', 'finishedAt'].map(field);
  const trigger = field('trigger');
  const status = field('status');
  if (typeof id !== 'string' || id === '' || Buffer.byteLength(id) > ID_BYTES || id.includes('\0')) return { kind: 'invalid' };
  if (typeof remediation !== 'string' || typeof queuedAt !== 'string' || !isTrigger(trigger) || !isStatus(status)) return { kind: 'invalid' };
  const time = typeof finishedAt === 'string' ? finishedAt : typeof startedAt === 'string' ? startedAt : queuedAt;
  const lineMs = Date.parse(time);
  return {
    kind: 'run',
    lineMs: Number.isNaN(lineMs) ? 0 : lineMs,
    entry: { ...runKey(id, queuedAt), offset, length: line.length, status, trigger, remediation },
  };
}
