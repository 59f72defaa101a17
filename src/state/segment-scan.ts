import type { FileHandle } from 'node:fs/promises';
import { z } from 'zod';
import { runRecordSchema } from '../remediation/journal.js';
import { ID_BYTES, runKey } from './run-key.js';
import type { IndexEntry } from './segment-index.js';

const CHUNK_BYTES = 1 << 20;
const NEWLINE = 0x0a;

/**
 * Reads the complete lines of a segment from `from` on, a chunk at a time, so memory holds one
 * chunk (or one long line), never the file. A last line without its newline is not complete: it
 * is either being written by another process or torn by a crash, and is left for later.
 * Stops after about `maxBytes`. Returns the offset just past the last complete line.
 */
export async function scanLines(handle: FileHandle, from: number, onLine: (line: Buffer, offset: number) => void, maxBytes = Infinity): Promise<number> {
  let position = from;
  let carry = Buffer.alloc(0);
  let lineStart = from;
  for (;;) {
    const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
    const { bytesRead } = await handle.read(chunk, 0, CHUNK_BYTES, position);
    if (bytesRead === 0) break;
    position += bytesRead;
    const data = carry.length > 0 ? Buffer.concat([carry, chunk.subarray(0, bytesRead)]) : chunk.subarray(0, bytesRead);
    let start = 0;
    for (let end = data.indexOf(NEWLINE, start); end !== -1; end = data.indexOf(NEWLINE, start)) {
      onLine(data.subarray(start, end), lineStart);
      lineStart += end - start + 1;
      start = end + 1;
    }
    carry = Buffer.from(data.subarray(start));
    if (lineStart - from >= maxBytes) break;
  }
  return lineStart;
}

// Only what the index needs; the whole record is parsed with runRecordSchema when it is read.
const indexedFields = z.object({
  id: z.string().min(1).refine((id) => Buffer.byteLength(id) <= ID_BYTES && !id.includes('\0'), `at most ${ID_BYTES} bytes`),
  remediation: z.string(),
  trigger: runRecordSchema.shape.trigger,
  status: runRecordSchema.shape.status,
  queuedAt: z.string(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
});

export type ParsedLine = { kind: 'blank' } | { kind: 'invalid' } | { kind: 'run'; entry: IndexEntry; lineMs: number };

/** What one journal line contributes to the index. */
export function parseLine(line: Buffer, offset: number): ParsedLine {
  const text = line.toString('utf8');
  if (text.trim() === '') return { kind: 'blank' };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { kind: 'invalid' };
  }
  const parsed = indexedFields.safeParse(value);
  if (!parsed.success) return { kind: 'invalid' };
  const fields = parsed.data;
  const lineMs = Date.parse(fields.finishedAt ?? fields.startedAt ?? fields.queuedAt);
  return {
    kind: 'run',
    lineMs: Number.isNaN(lineMs) ? 0 : lineMs,
    entry: { ...runKey(fields.id, fields.queuedAt), offset, length: line.length, status: fields.status, trigger: fields.trigger, remediation: fields.remediation },
  };
}
