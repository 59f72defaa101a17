import { Counter, Gauge, type MetricType, type Registry } from 'prom-client';
import { escapeHelp, escapeLabelValue, formatValue, labelText } from './exposition.js';
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
  /** The family's lines as of this call: a later replace() does not change them. */
  render(): Iterable<string>;
}

class SnapshotGauge extends Gauge<string> implements SnapshotMetric {
  private parts: readonly FamilyPart[] = [];
  constructor(readonly spec: FamilySpec) {
    super({ name: spec.name, help: spec.help, labelNames: [...spec.labelNames], registers: [] });
  }
  replace(parts: readonly FamilyPart[]): void { this.parts = parts; }
  render(): Iterable<string> { return familyLines(this.spec, this.parts); }
  override async get() { return snapshotObject(this.spec, this.parts); }
}

class SnapshotCounter extends Counter<string> implements SnapshotMetric {
  private parts: readonly FamilyPart[] = [];
  constructor(readonly spec: FamilySpec) {
    super({ name: spec.name, help: spec.help, labelNames: [...spec.labelNames], registers: [] });
  }
  replace(parts: readonly FamilyPart[]): void { this.parts = parts; }
  render(): Iterable<string> { return familyLines(this.spec, this.parts); }
  override async get() { return snapshotObject(this.spec, this.parts); }
}

function* familyLines(spec: FamilySpec, parts: readonly FamilyPart[]): Generator<string> {
  const name = escapeHelp(spec.name);
  yield `# HELP ${name} ${escapeHelp(spec.help)}\n# TYPE ${name} ${spec.type}`;
  for (const part of parts) {
    if ('readings' in part) {
      for (const reading of part.readings) {
        const labels = labelText(reading.labels);
        yield labels === '' ? `\n${name} ${formatValue(reading.value)}` : `\n${name}{${labels}} ${formatValue(reading.value)}`;
      }
      continue;
    }
    const { block, columns } = part;
    const suffixes = columns.map((column) => (column.labels ? labelText(column.labels) : ''));
    const values = escapedValues(block);
    const rows = values[0]?.length ?? 0;
    for (let row = 0; row < rows; row += 1) {
      // Made per row and dropped at once: a row's label text kept for the whole render would
      // outlive the young generation (10,000 tables: 1.7 MB promoted per scrape).
      let prefix = '';
      for (let i = 0; i < values.length; i += 1) prefix += `${i === 0 ? '' : ','}${block.labelNames[i]!}="${values[i]![row]!}"`;
      for (let c = 0; c < columns.length; c += 1) {
        const value = columns[c]!.values[row]!;
        if (Number.isNaN(value)) continue;
        const suffix = suffixes[c]!;
        const labels = prefix === '' ? suffix : suffix === '' ? prefix : `${prefix},${suffix}`;
        yield labels === '' ? `\n${name} ${formatValue(value)}` : `\n${name}{${labels}} ${formatValue(value)}`;
      }
    }
  }
}

// A block's label values escaped once and shared by every family of the block; a value that needs
// no escaping (nearly all) is the same string, so this costs an array of references per label.
const escapedCache = new WeakMap<SeriesBlock, string[][]>();
const NEEDS_ESCAPE = /[\\\n"]/;

function escapedValues(block: SeriesBlock): string[][] {
  let escaped = escapedCache.get(block);
  if (!escaped) {
    escaped = block.labelValues.map((values) => values.map((value) => (NEEDS_ESCAPE.test(value) ? escapeLabelValue(value) : value)));
    escapedCache.set(block, escaped);
  }
  return escaped;
}

/** The same series as label objects, for prom-client's own rendering (registry.metrics()). */
function* series(parts: readonly FamilyPart[]): Generator<{ labels: Labels; value: number }> {
  for (const part of parts) {
    if ('readings' in part) {
      yield* part.readings;
      continue;
    }
    const rows = part.block.labelValues[0]?.length ?? 0;
    for (let row = 0; row < rows; row += 1) {
      for (const column of part.columns) {
        const value = column.values[row]!;
        if (Number.isNaN(value)) continue;
        const labels: Record<string, string> = {};
        part.block.labelNames.forEach((label, i) => { labels[label] = part.block.labelValues[i]![row]!; });
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
