import { nodeCrypto } from '../../lazy.js';

/**
 * Run ids that sort by the time they were made (the UUIDv7 layout: 48 bits of epoch ms, the
 * version, a 12-bit sequence, the variant and 62 random bits). A store finds a run's place from
 * its id alone, and ids made by one process in the same millisecond keep their order.
 */
const TIME_ORDERED = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const SEQUENCE_MAX = 0xfff;

let lastMs = -1;
let sequence = 0;
// Random bytes are drawn 4 KiB at a time: one syscall per 512 ids, not one per id.
let pool = Buffer.alloc(0);
let pooled = 0;

function random8(): Buffer {
  if (pooled + 8 > pool.length) {
    pool = nodeCrypto().randomBytes(4096);
    pooled = 0;
  }
  pooled += 8;
  return pool.subarray(pooled - 8, pooled);
}

export function newRunId(nowMs: number): string {
  let ms = Math.max(0, Math.floor(nowMs));
  if (ms <= lastMs && ms > lastMs - 1000) {
    // Same millisecond (or a clock that stepped back a little): keep counting from the last id.
    ms = lastMs;
    sequence += 1;
    if (sequence > SEQUENCE_MAX) {
      ms += 1;
      sequence = 0;
    }
  } else {
    sequence = 0;
  }
  lastMs = ms;
  const time = ms.toString(16).padStart(12, '0');
  const random = random8();
  const variant = ((random[0] ?? 0) & 0x3f) | 0x80;
  const tail = random.subarray(1).toString('hex');
  return `${time.slice(0, 8)}-${time.slice(8)}-7${sequence.toString(16).padStart(3, '0')}-${variant.toString(16)}${tail.slice(0, 2)}-${tail.slice(2, 14)}`;
}

/** The epoch ms a time-ordered id was made at; null for any other id (a journal from before them). */
export function idTime(id: string): number | null {
  // Called for every claim and index line at start: the cheap checks first.
  if (id.length !== 36 || id[14] !== '7' || !TIME_ORDERED.test(id)) return null;
  return Number.parseInt(`${id.slice(0, 8)}${id.slice(9, 13)}`, 16);
}
