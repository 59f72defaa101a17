import { formatValue } from './exposition.js';

// The exposition is written as UTF-8 straight into buffers of about this size, and each time one
// fills it is handed on as it is, a view of the buffer: at 10,000 tables the exposition is 90,000
// lines and 10 MB, and no line is ever a string of its own (those were most of a scrape's garbage).
// The reader sends a slice (or copies it) before it asks for the next, and only then is its
// buffer written into again, so a scrape reuses a few buffers instead of leaving 10 MB of them,
// outside the heap, for a garbage collection to find. Handing the socket a string instead (decoded
// here, encoded again by the socket) cost about a tenth of a 10,200-table scrape's CPU.
// 64 KB: each slice is a write to the socket, and fewer, larger writes cost less of the 10 MB's
// time (10,200 tables, five alternated runs: p50 9 % and CPU 4 % lower than with 16 KB, and the
// same peak RSS, since the buffers are reused; docs/performance.md, "64 KB slices"). 16 KB was
// chosen when slices were strings, and 64 KB strings lived through scavenges and were promoted.
export const SLICE_BYTES = 64 * 1024;
// The longest number formatValue writes: "-1.7976931348623157e+308" is 24 characters.
export const MAX_VALUE_BYTES = 24;
// Buffers kept for reuse: a slice is given back before the next full one is taken, so two suffice.
const SPARE_SLICES = 2;

/** Exposition text written as UTF-8 bytes and taken in slices: write into it, then take the slices that are full. */
export class TextSlices {
  private slice: Buffer = Buffer.allocUnsafe(SLICE_BYTES);
  private used = 0;
  private readonly full: Buffer[] = [];
  private readonly spare: Buffer[] = [];
  private readonly digits = new Uint8Array(16);

  /** Whether some slices are full and waiting to be taken. */
  get filled(): boolean {
    return this.full.length > 0;
  }

  /**
   * Makes room for `bytes` more bytes in the current slice (a slice that cannot hold them is
   * full), so a line is never split and the writes after it need no check of their own.
   */
  room(bytes: number): void {
    if (this.used + bytes <= this.slice.length) return;
    this.finish();
    // A line longer than a slice gets a buffer of its own size, then the usual size again.
    if (bytes > this.slice.length) this.slice = Buffer.allocUnsafe(bytes);
  }

  /** Copies bytes into the room made for them. */
  bytes(source: Uint8Array): void {
    this.slice.set(source, this.used);
    this.used += source.length;
  }

  /** Any text, with its own room. */
  text(text: string): void {
    this.room(Buffer.byteLength(text));
    this.used += this.slice.write(text, this.used);
  }

  /** A value as formatValue writes it, into the room made for it (MAX_VALUE_BYTES). */
  value(value: number): void {
    if (value >= 0 && Number.isSafeInteger(value)) {
      // Most values (tuples, counts, bytes) are whole: their digits without making a string.
      let rest = value;
      let count = 0;
      do {
        const digit = rest % 10;
        this.digits[count++] = 48 + digit;
        rest = (rest - digit) / 10;
      } while (rest > 0);
      while (count > 0) this.slice[this.used++] = this.digits[--count]!;
      return;
    }
    // Fractions, negatives, huge and infinite values: as prom-client writes them (ASCII only).
    const text = formatValue(value);
    for (let i = 0; i < text.length; i += 1) this.slice[this.used++] = text.charCodeAt(i);
  }

  /**
   * The full slices, taken one at a time: each is a view of a buffer that is written into again
   * once the caller asks for the next, so the caller sends or copies it first.
   */
  *take(): Generator<Uint8Array> {
    for (let slice = this.full.shift(); slice; slice = this.full.shift()) {
      yield slice;
      if (slice.buffer.byteLength === SLICE_BYTES && this.spare.length < SPARE_SLICES) this.spare.push(Buffer.from(slice.buffer, slice.byteOffset, SLICE_BYTES));
    }
  }

  /** Everything written so far, the current slice included, taken as take() does. */
  *end(): Generator<Uint8Array> {
    this.finish();
    yield* this.take();
  }

  private finish(): void {
    if (this.used === 0) return;
    this.full.push(this.slice.subarray(0, this.used));
    this.slice = this.spare.pop() ?? Buffer.allocUnsafe(SLICE_BYTES);
    this.used = 0;
  }
}

/**
 * One family's text: `write` puts its lines into the slices (the first starts with "# HELP", the
 * others with a newline) and pauses whenever slices are full, or `text` is prom-client's rendering.
 */
export type FamilyText = { readonly write: (out: TextSlices) => Iterable<void> } | { readonly text: () => Promise<string> };

/**
 * The exposition of some families in order, as prom-client joins them, in slices rendered as
 * they are asked for. A slice is valid until the next is asked for (TextSlices.take).
 */
export async function* exposition(families: readonly FamilyText[]): AsyncGenerator<Uint8Array> {
  const out = new TextSlices();
  for (const [i, family] of families.entries()) {
    if (i > 0) out.text('\n\n');
    if ('text' in family) out.text(await family.text());
    else for (const _pause of family.write(out)) yield* out.take();
    yield* out.take();
  }
  out.text('\n');
  yield* out.end();
}

/** The slices as strings, each decoded before the next slice is rendered into its buffer. */
export async function* asStrings(slices: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  for await (const slice of slices) yield Buffer.from(slice.buffer, slice.byteOffset, slice.byteLength).toString('utf8');
}
