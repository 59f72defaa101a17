import type { Labels } from './types.js';

// The Prometheus text format exactly as prom-client writes it (registry.js and util.js of
// prom-client 15), so families rendered here and families rendered by prom-client read the same.

export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** HELP text: backslash and newline escaped, quotes kept. */
export function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'Nan';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return `${value}`;
}

/** `name="value",...` in the labels' own order, as prom-client writes them (no braces). */
export function labelText(labels: Labels): string {
  let text = '';
  for (const name in labels) text += `${text === '' ? '' : ','}${name}="${escapeLabelValue(labels[name] ?? '')}"`;
  return text;
}

// Text goes to the socket in slices of about this size, rendered as the socket takes them, so
// the process never holds the whole exposition (10 MB at 10,000 tables).
const SLICE_CHARS = 64 * 1024;

/** One family's text: its lines (the first starts with "# HELP", the others with a newline), or prom-client's rendering of it. */
export type FamilyText = Iterable<string> | (() => Promise<string>);

/**
 * The exposition of some families in order, as prom-client joins them, in UTF-8 slices. Each
 * slice's lines are joined once into flat text and encoded outside the heap at once: lines die
 * young instead of being kept (and promoted to the old generation) by a half-sent slice.
 */
export async function* exposition(families: readonly FamilyText[]): AsyncGenerator<Buffer> {
  let pieces: string[] = [];
  let length = 0;
  const add = (piece: string) => { pieces.push(piece); length += piece.length; };
  const take = () => {
    const slice = Buffer.from(pieces.join(''), 'utf8');
    pieces = [];
    length = 0;
    return slice;
  };
  for (const [i, family] of families.entries()) {
    if (i > 0) add('\n\n');
    if (typeof family === 'function') {
      add(await family());
      continue;
    }
    for (const piece of family) {
      add(piece);
      if (length >= SLICE_CHARS) yield take();
    }
  }
  add('\n');
  yield take();
}
