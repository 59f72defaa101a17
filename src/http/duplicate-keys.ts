/**
 * The first key an object of a JSON text gives twice, as a path (`params.keepDays`,
 * `alerts[0].labels.table`), or null. JSON.parse keeps the last value of a repeated key without a
 * word, so `{"params": {"keepDays": 30, "keepDays": 3}}` would delete what the first value meant
 * to keep, and a proxy that reads the first value would check a body upkeep reads differently.
 * RFC 8259 leaves repeated names to the parser; upkeep refuses them.
 *
 * `text` is JSON that JSON.parse took: this only walks its structure. Strings are skipped with
 * indexOf and keys compared where they stand in the text, without copying them: 2.6–2.9 µs for
 * a webhook of one alert (750 bytes), where JSON.parse takes 4.0–4.1 µs (docs/performance.md,
 * "Repeated keys refused").
 */
export function duplicateKey(text: string): string | null {
  const frames: Frame[] = [];
  let expectKey = false;
  // The next backslash in the text, kept ahead of the keys: whether a key has an escape, without reading it.
  let backslash = text.indexOf('\\');
  for (let at = 0; at < text.length; at += 1) {
    const code = text.charCodeAt(at);
    if (code === QUOTE) {
      const end = stringEnd(text, at);
      const top = frames[frames.length - 1];
      if (expectKey && top !== undefined && !top.array) {
        if (backslash !== -1 && backslash < at) backslash = text.indexOf('\\', at);
        if (repeats(text, top, at + 1, end - at - 1, backslash !== -1 && backslash < end)) return pathOf(text, frames);
        expectKey = false;
      }
      at = end;
    } else if (code === OPEN_OBJECT) {
      frames.push({ array: false, ranges: [], names: null, at: 0, length: 0 });
      expectKey = true;
    } else if (code === OPEN_ARRAY) {
      frames.push({ array: true, ranges: NO_RANGES, names: null, at: 0, length: 0 });
    } else if (code === CLOSE_OBJECT || code === CLOSE_ARRAY) {
      frames.pop();
      expectKey = false;
    } else if (code === COMMA) {
      const top = frames[frames.length - 1];
      if (top?.array) top.at += 1;
      else expectKey = true;
    }
  }
  return null;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
// An array's: arrays have no keys (shared, never written).
const NO_RANGES: number[] = [];
// Past this many keys, or with a key this long, an object's keys are compared through a Set
// rather than each with each. A megabyte built to be slow here (objects of 16 keys of 64
// characters that differ at the end) takes 22 ms, about what JSON.parse alone takes for the
// slowest megabyte to parse (40,000 short keys: 15 ms; the scan 11 ms).
const MANY_KEYS = 16;
const LONG_KEY = 64;

/**
 * An open array (at: the index it is at) or object (at, length: where its last key stands in the
 * text). An object's keys are compared as text, by where they stand (ranges: start, length, ...),
 * while none has an escape or is long; after that, or past MANY_KEYS, as the names JSON.parse reads.
 */
interface Frame { array: boolean; ranges: number[]; names: Set<string> | null; at: number; length: number }

/** Whether the object already has the key at start..start+length; if not, it is added. */
function repeats(text: string, frame: Frame, start: number, length: number, escaped: boolean): boolean {
  frame.at = start;
  frame.length = length;
  if (frame.names === null && (escaped || length > LONG_KEY || frame.ranges.length >= MANY_KEYS * 2)) {
    frame.names = new Set();
    for (let index = 0; index < frame.ranges.length; index += 2) frame.names.add(keyAt(text, frame.ranges[index] ?? 0, frame.ranges[index + 1] ?? 0));
  }
  if (frame.names !== null) {
    const name = keyAt(text, start, length);
    if (frame.names.has(name)) return true;
    frame.names.add(name);
    return false;
  }
  for (let index = 0; index < frame.ranges.length; index += 2) {
    if (frame.ranges[index + 1] === length && sameText(text, frame.ranges[index] ?? 0, start, length)) return true;
  }
  frame.ranges.push(start, length);
  return false;
}

function hasEscape(text: string, start: number, length: number): boolean {
  for (let index = start; index < start + length; index += 1) if (text.charCodeAt(index) === BACKSLASH) return true;
  return false;
}

function sameText(text: string, first: number, second: number, length: number): boolean {
  for (let index = 0; index < length; index += 1) if (text.charCodeAt(first + index) !== text.charCodeAt(second + index)) return false;
  return true;
}

/** The name JSON.parse reads for the key at start..start+length: escapes make different texts of one name ("a", "\u0061"). */
function keyAt(text: string, start: number, length: number): string {
  if (!hasEscape(text, start, length)) return text.slice(start, start + length);
  // The key with its quotes is a JSON string literal (JSON.parse took the whole text).
  return String(JSON.parse(text.slice(start - 1, start + length + 1)));
}

/** The index of the quote that closes the string opening at `start`: the first not escaped by an odd run of backslashes. */
function stringEnd(text: string, start: number): number {
  let end = text.indexOf('"', start + 1);
  for (;;) {
    let backslashes = 0;
    while (text.charCodeAt(end - 1 - backslashes) === BACKSLASH) backslashes += 1;
    if (backslashes % 2 === 0) return end;
    end = text.indexOf('"', end + 1);
  }
}

/** `alerts[0].labels.table`: where each open frame is, the last one's key being the repeated one. */
function pathOf(text: string, frames: readonly Frame[]): string {
  let path = '';
  for (const frame of frames) {
    if (frame.array) path += `[${frame.at}]`;
    else path += `${path === '' ? '' : '.'}${keyAt(text, frame.at, frame.length)}`;
  }
  return path;
}
