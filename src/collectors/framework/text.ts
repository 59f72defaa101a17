import { formatValue } from './exposition.js';

// The exposition is written as UTF-8 straight into one buffer of about this size, and each time it
// fills, its text is handed on as one string: at 10,000 tables the exposition is 90,000 lines and
// 10 MB, and no line is ever a string of its own (those were most of a scrape's garbage). Strings,
// not the buffers: the socket copies a string when it writes it, so a slice is freed as soon as it
// is sent, and the one buffer is reused; a Buffer handed to the socket would stay allocated outside
// the heap until a garbage collection found it (with little garbage on the heap, 10 MB a scrape).
// Small, so the slice strings die young: with 64 KB slices about 1.8 MB of them a scrape lived
// through a scavenge and was promoted (10,200 tables: peak RSS 186 MB; with 16 KB, 157 MB).
const SLICE_BYTES = 16 * 1024;
// The longest number formatValue writes: "-1.7976931348623157e+308" is 24 characters.
export const MAX_VALUE_BYTES = 24;

/** Exposition text written as UTF-8 bytes and taken in slices: write into it, then take the slices that are full. */
export class TextSlices {
  private slice = Buffer.allocUnsafe(SLICE_BYTES);
  private used = 0;
  private readonly full: string[] = [];
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
    const size = Math.max(bytes, SLICE_BYTES);
    if (this.slice.length !== size) this.slice = Buffer.allocUnsafe(size);
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

  /** The full slices, taken: the caller sends them. */
  *take(): Generator<string> {
    while (this.full.length > 0) yield this.full.shift()!;
  }

  /** Everything written so far, the current slice included; the writer starts a new slice. */
  *end(): Generator<string> {
    this.finish();
    yield* this.take();
  }

  private finish(): void {
    if (this.used === 0) return;
    this.full.push(this.slice.toString('utf8', 0, this.used));
    this.used = 0;
  }
}

/**
 * One family's text: `write` puts its lines into the slices (the first starts with "# HELP", the
 * others with a newline) and pauses whenever slices are full, or `text` is prom-client's rendering.
 */
export type FamilyText = { readonly write: (out: TextSlices) => Iterable<void> } | { readonly text: () => Promise<string> };

/** The exposition of some families in order, as prom-client joins them, in slices rendered as they are taken. */
export async function* exposition(families: readonly FamilyText[]): AsyncGenerator<string> {
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
