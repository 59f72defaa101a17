import { InvalidCursorError } from './store.js';
import { idTime } from './run-id.js';

/**
 * Where a run sits in the journal's order: the time its id was made (or, for ids from before
 * time-ordered ids, its queuedAt), then the id. Newest first means the greatest key first.
 */
export interface RunKey {
  readonly time: number;
  readonly id: string;
}

/** The longest id the on-disk index holds (UTF-8 bytes); upkeep's own ids are 36. */
export const ID_BYTES = 40;

export function runKey(id: string, queuedAt: string): RunKey {
  const parsed = Date.parse(queuedAt);
  return { time: idTime(id) ?? (Number.isNaN(parsed) ? 0 : parsed), id };
}

export function compareKeys(a: RunKey, b: RunKey): number {
  if (a.time !== b.time) return a.time < b.time ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

// base64url of "time:id": opaque to clients, and nothing in it is trusted until it parses.
export function encodeCursor(key: RunKey): string {
  return Buffer.from(`${key.time}:${key.id}`, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): RunKey {
  const invalid = new InvalidCursorError('invalid cursor: pass back the "next" value of a previous GET /runs reply unchanged');
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(cursor)) throw invalid;
  const match = /^(\d{1,16}):(.+)$/s.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match) throw invalid;
  const time = Number(match[1]);
  const id = match[2] ?? '';
  if (!Number.isSafeInteger(time) || Buffer.byteLength(id) > ID_BYTES || id.includes('\0')) throw invalid;
  return { time, id };
}
