// A DataRow message: 'D', an Int32 length (counting itself), an Int16 field count, then per field
// an Int32 length (-1 for NULL) and that many bytes, in text format.
const DATA_ROW = 0x44;
const FIELDS_AT = 7;
// Powers of ten that are exact doubles (10^22 is the last): a decimal with at most 2^53 as its
// digits and at most 22 after the point is the quotient of two exact doubles, and IEEE division
// rounds that correctly, so the fast path below gives what Number() of the text would.
const EXACT_POWERS = Array.from({ length: 23 }, (_, i) => 10 ** i);

/**
 * Reads the fields of DataRow messages one after another, in place: a number column costs no
 * string, where pg makes a string per field and then parses it (issue 13: pg's row parsing was
 * about a third of the collector's CPU at 10,000 tables). One reader serves a whole reading.
 */
export class DataRowFields {
  private bytes: Buffer = Buffer.alloc(0);
  private at = 0;
  private messageEnd = 0;
  /** Whether the field read last was NULL. */
  wasNull = false;
  /** Where the field read last ends. */
  end = 0;

  /** Starts on the message bytes[start, end); returns its field count. */
  open(bytes: Buffer, start: number, end: number): number {
    if (end - start < FIELDS_AT || bytes[start] !== DATA_ROW) throw new Error('not a DataRow message');
    this.bytes = bytes;
    this.at = start + FIELDS_AT;
    this.messageEnd = end;
    return bytes.readInt16BE(start + 5);
  }

  /** The next field, a float8's text, as a number; NaN (and wasNull) for NULL. */
  number(): number {
    const start = this.field();
    return start < 0 ? Number.NaN : float8(this.bytes, start, this.end);
  }

  /** Moves past the next field; returns where its bytes start (they end at `end`), or -1 for NULL. */
  field(): number {
    if (this.at + 4 > this.messageEnd) throw new Error('DataRow message ends before its fields');
    const length = this.bytes.readInt32BE(this.at);
    const start = this.at + 4;
    this.wasNull = length === -1;
    if (!this.wasNull && (length < 0 || start + length > this.messageEnd)) throw new Error('DataRow message ends before its fields');
    this.at = this.wasNull ? start : start + length;
    this.end = this.at;
    return this.wasNull ? -1 : start;
  }
}

/**
 * A float8 output by PostgreSQL (digits with an optional sign and point; else exponents, NaN and
 * Infinity) as a number, equal to Number() of its text; throws on text that is not a number.
 */
export function float8(bytes: Buffer, start: number, end: number): number {
  let i = start;
  const negative = bytes[i] === 0x2d;
  if (negative) i += 1;
  let digits = 0;
  let mantissa = 0;
  let scale = 0;
  let point = false;
  for (; i < end; i += 1) {
    const c = bytes[i]!;
    if (c >= 0x30 && c <= 0x39) {
      // Exact while below 2^53; past it the sum stays past it (rounding keeps the order), so the
      // check below sends every such number to the slow path.
      mantissa = mantissa * 10 + (c - 0x30);
      digits += 1;
      if (point) scale += 1;
    } else if (c === 0x2e && !point) {
      point = true;
    } else {
      return slowFloat8(bytes, start, end);
    }
  }
  if (digits === 0 || mantissa > Number.MAX_SAFE_INTEGER || scale >= EXACT_POWERS.length) return slowFloat8(bytes, start, end);
  const value = scale === 0 ? mantissa : mantissa / EXACT_POWERS[scale]!;
  return negative ? -value : value;
}

function slowFloat8(bytes: Buffer, start: number, end: number): number {
  const text = bytes.toString('latin1', start, end);
  // Number() also takes '', spaces, hex and '+Infinity', which float8 output never is: only the
  // forms PostgreSQL writes are numbers here.
  if (!/^(?:-?(?:\d+\.?\d*(?:e[+-]?\d+)?|Infinity)|NaN)$/.test(text)) throw new Error('expected a number, got text');
  return Number(text);
}
