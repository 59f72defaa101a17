import type { BlockColumn, Labels, SeriesBlock } from './types.js';

/** One column of a block: `value` of each row, null for "no series for this row". */
export function column<Row>(family: string, rows: readonly Row[], value: (row: Row) => number | null | undefined, labels?: Labels): BlockColumn {
  const values = new Float64Array(rows.length);
  for (let i = 0; i < rows.length; i += 1) values[i] = value(rows[i]!) ?? Number.NaN;
  return labels ? { family, labels, values } : { family, values };
}

/** A block whose rows are labelled by `labels(row)`, in `labelNames` order. */
export function seriesBlock<Row>(labelNames: readonly string[], rows: readonly Row[], labels: (row: Row) => readonly string[], columns: readonly BlockColumn[]): SeriesBlock {
  const labelValues = labelNames.map(() => new Array<string>(rows.length));
  rows.forEach((row, i) => { labels(row).forEach((value, j) => { labelValues[j]![i] = value; }); });
  return { labelNames, labelValues, columns };
}
