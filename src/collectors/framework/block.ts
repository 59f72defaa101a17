import { labelText } from './exposition.js';
import type { BlockColumn, BlockRow, Labels } from './types.js';

/** One column of a block: `value` of each row, null for "no series for this row". */
export function column<Row>(family: string, rows: readonly Row[], value: (row: Row) => number | null | undefined, labels?: Labels): BlockColumn {
  const values = new Float64Array(rows.length);
  for (let i = 0; i < rows.length; i += 1) values[i] = value(rows[i]!) ?? Number.NaN;
  return labels ? { family, labels, values } : { family, values };
}

/** A row labelled `labelValues` (in `labelNames` order), its label text encoded once. */
export function blockRow(labelNames: readonly string[], labelValues: readonly string[]): BlockRow {
  const labels: Record<string, string> = {};
  labelNames.forEach((name, i) => { labels[name] = labelValues[i] ?? ''; });
  return { labelValues, labelText: Buffer.from(labelText(labels)) };
}
