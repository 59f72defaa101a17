import { Counter, Gauge, type MetricType, type Registry } from '../../prom.js';
import { escapeHelp, formatValue, labelText } from './exposition.js';
import { MAX_VALUE_BYTES, type FamilyText, type TextSlices } from './text.js';
import type { BlockColumn, FamilySpec, Labels, Reading, SeriesBlock } from './types.js';

/** A family's series from one collector instance: single readings, then its columns of blocks. */
export type FamilyPart =
  | { readonly readings: Reading[] }
  | { readonly block: SeriesBlock; readonly columns: readonly BlockColumn[] };

/**
 * A metric whose whole value set is replaced by each scrape. The scraper renders it to text
 * itself (prom-client's formatting builds several objects and strings per series, the dominant
 * cost at tens of thousands of per-table series). It stays registered with prom-client, which
 * keeps the families in registration order and names unique; prom-client's own rendering of it
 * (registry.metrics()) gives the same text.
 */
export interface SnapshotMetric {
  readonly spec: FamilySpec;
  replace(parts: readonly FamilyPart[]): void;
  /** Writes the family's lines as of this call (a later replace() does not change them), pausing when slices are full. */
  render(): FamilyText;
}

class SnapshotGauge extends Gauge<string> implements SnapshotMetric {
  private parts: readonly FamilyPart[] = [];
  private readonly text: FamilyTextBytes;
  constructor(readonly spec: FamilySpec) {
    super({ name: spec.name, help: spec.help, labelNames: [...spec.labelNames], registers: [] });
    this.text = familyTextBytes(spec);
  }
  replace(parts: readonly FamilyPart[]): void { this.parts = parts; }
  render(): FamilyText { return renderer(this.text, this.parts); }
  override async get() { return snapshotObject(this.spec, this.parts); }
}

class SnapshotCounter extends Counter<string> implements SnapshotMetric {
  private parts: readonly FamilyPart[] = [];
  private readonly text: FamilyTextBytes;
  constructor(readonly spec: FamilySpec) {
    super({ name: spec.name, help: spec.help, labelNames: [...spec.labelNames], registers: [] });
    this.text = familyTextBytes(spec);
  }
  replace(parts: readonly FamilyPart[]): void { this.parts = parts; }
  render(): FamilyText { return renderer(this.text, this.parts); }
  override async get() { return snapshotObject(this.spec, this.parts); }
}

/** The fixed text of a family's lines, encoded once. */
interface FamilyTextBytes {
  readonly name: string;
  /** "# HELP ...\n# TYPE ..." */
  readonly header: Buffer;
  /** "\nname{" and "\nname ": what starts a line with and without labels. */
  readonly open: Buffer;
  readonly bare: Buffer;
}

const CLOSE = Buffer.from('} ');
const COMMA = Buffer.from(',');

function familyTextBytes(spec: FamilySpec): FamilyTextBytes {
  const name = escapeHelp(spec.name);
  return {
    name,
    header: Buffer.from(`# HELP ${name} ${escapeHelp(spec.help)}\n# TYPE ${name} ${spec.type}`),
    open: Buffer.from(`\n${name}{`),
    bare: Buffer.from(`\n${name} `),
  };
}

function renderer(text: FamilyTextBytes, parts: readonly FamilyPart[]): FamilyText {
  return { write: (out) => familyLines(text, parts, out) };
}

function* familyLines(text: FamilyTextBytes, parts: readonly FamilyPart[], out: TextSlices): Generator<void> {
  out.room(text.header.length);
  out.bytes(text.header);
  for (const part of parts) {
    if ('readings' in part) {
      for (const reading of part.readings) {
        const labels = labelText(reading.labels);
        out.text(labels === '' ? `\n${text.name} ${formatValue(reading.value)}` : `\n${text.name}{${labels}} ${formatValue(reading.value)}`);
      }
      if (out.filled) yield;
      continue;
    }
    yield* blockLines(text, part.block, part.columns, out);
  }
}

/** A block's lines: per row, a line per column with a value, the row's label text copied as bytes. */
function* blockLines(text: FamilyTextBytes, block: SeriesBlock, columns: readonly BlockColumn[], out: TextSlices): Generator<void> {
  const suffixes = columns.map((column) => Buffer.from(column.labels ? labelText(column.labels) : ''));
  for (let row = 0; row < block.rows.length; row += 1) {
    const labels = block.rows[row]!.labelText;
    for (let c = 0; c < columns.length; c += 1) {
      const value = columns[c]!.values[row]!;
      if (Number.isNaN(value)) continue;
      const suffix = suffixes[c]!;
      out.room(text.open.length + labels.length + 1 + suffix.length + CLOSE.length + MAX_VALUE_BYTES);
      if (labels.length === 0 && suffix.length === 0) {
        out.bytes(text.bare);
      } else {
        out.bytes(text.open);
        out.bytes(labels);
        if (labels.length > 0 && suffix.length > 0) out.bytes(COMMA);
        out.bytes(suffix);
        out.bytes(CLOSE);
      }
      out.value(value);
    }
    if (out.filled) yield;
  }
}

/** The same series as label objects, for prom-client's own rendering (registry.metrics()). */
function* series(parts: readonly FamilyPart[]): Generator<{ labels: Labels; value: number }> {
  for (const part of parts) {
    if ('readings' in part) {
      yield* part.readings;
      continue;
    }
    for (const [row, { labelValues }] of part.block.rows.entries()) {
      for (const column of part.columns) {
        const value = column.values[row]!;
        if (Number.isNaN(value)) continue;
        const labels: Record<string, string> = {};
        part.block.labelNames.forEach((label, i) => { labels[label] = labelValues[i]!; });
        yield { labels: { ...labels, ...column.labels }, value };
      }
    }
  }
}

function snapshotObject(spec: FamilySpec, parts: readonly FamilyPart[]) {
  return {
    name: spec.name,
    help: spec.help,
    // prom-client's typings declare MetricType as a numeric enum, but its runtime (and the
    // exposition format) use the strings 'gauge' and 'counter'.
    type: spec.type as unknown as MetricType,
    aggregator: 'sum' as const,
    collect: () => undefined,
    values: [...series(parts)],
  };
}

export function registerSnapshot(registry: Registry, spec: FamilySpec): SnapshotMetric {
  const metric = spec.type === 'counter' ? new SnapshotCounter(spec) : new SnapshotGauge(spec);
  registry.registerMetric(metric);
  return metric;
}
