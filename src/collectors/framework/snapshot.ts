import { Counter, Gauge, type MetricType, type Registry } from 'prom-client';
import type { FamilySpec, Labels } from './types.js';

interface SnapshotValue { labels: Labels; value: number }

/**
 * A metric whose whole value set is replaced by each scrape. prom-client's own set()/inc()
 * validate and hash labels per call, which is the dominant cost at tens of thousands of
 * per-table series; a snapshot hands the finished list straight to the registry.
 */
export interface SnapshotMetric {
  readonly spec: FamilySpec;
  replace(values: SnapshotValue[]): void;
}

class SnapshotGauge extends Gauge<string> implements SnapshotMetric {
  private values: SnapshotValue[] = [];
  constructor(readonly spec: FamilySpec) {
    super({ name: spec.name, help: spec.help, labelNames: [...spec.labelNames], registers: [] });
  }
  replace(values: SnapshotValue[]): void { this.values = values; }
  override async get() { return snapshotObject(this.spec, this.values); }
}

class SnapshotCounter extends Counter<string> implements SnapshotMetric {
  private values: SnapshotValue[] = [];
  constructor(readonly spec: FamilySpec) {
    super({ name: spec.name, help: spec.help, labelNames: [...spec.labelNames], registers: [] });
  }
  replace(values: SnapshotValue[]): void { this.values = values; }
  override async get() { return snapshotObject(this.spec, this.values); }
}

function snapshotObject(spec: FamilySpec, values: SnapshotValue[]) {
  return {
    name: spec.name,
    help: spec.help,
    // prom-client's typings declare MetricType as a numeric enum, but its runtime (and the
    // exposition format) use the strings 'gauge' and 'counter'.
    type: spec.type as unknown as MetricType,
    aggregator: 'sum' as const,
    collect: () => undefined,
    // Handed over as is: prom-client only reads the label objects, and a copy of tens of
    // thousands of series per scrape is what pushes the process's peak memory up.
    values,
  };
}

export function registerSnapshot(registry: Registry, spec: FamilySpec): SnapshotMetric {
  const metric = spec.type === 'counter' ? new SnapshotCounter(spec) : new SnapshotGauge(spec);
  registry.registerMetric(metric);
  return metric;
}
