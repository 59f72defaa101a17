import type { Config } from '../../config/schema.js';
import type { Logger } from '../../log.js';

export type Labels = Readonly<Record<string, string>>;

/** One metric family a collector can emit. Declared up front so the registry knows name, type and labels. */
export interface FamilySpec {
  readonly name: string;
  readonly help: string;
  readonly type: 'gauge' | 'counter';
  readonly labelNames: readonly string[];
}

export interface Reading {
  readonly family: string;
  readonly labels: Labels;
  readonly value: number;
}

/** Age of a reading served from cache: exported as upkeep_collector_cache_age_seconds. */
export interface CacheAge {
  readonly reading: string;
  readonly ageSeconds: number;
}

/**
 * Many series in one compact form: one row per object (a table), the same label names for every
 * row, and one column of values per family (with fixed extra labels, such as kind="auto"). Tens of
 * thousands of per-table series cost a few typed arrays instead of an object per series, and the
 * scraper renders them straight to text. NaN in a column means "no series for this row".
 */
export interface SeriesBlock {
  readonly labelNames: readonly string[];
  readonly rows: readonly BlockRow[];
  readonly columns: readonly BlockColumn[];
}

/** One row of a block: its labels, as values and as the exposition text the renderer copies. */
export interface BlockRow {
  /** In the block's labelNames order. */
  readonly labelValues: readonly string[];
  /** `name="value",...` in UTF-8, values escaped: made once, copied into every line of the row. */
  readonly labelText: Uint8Array;
}

export interface BlockColumn {
  readonly family: string;
  /** Labels after the row's own, the same on every row of the column. */
  readonly labels?: Labels;
  readonly values: Float64Array;
}

export interface CollectResult {
  readonly readings: readonly Reading[];
  /** Rendered after the readings of the same family. */
  readonly blocks?: readonly SeriesBlock[];
  readonly cacheAges?: readonly CacheAge[];
  /**
   * Called once no exposition reads this result any more: a newer one was published and every
   * exposition begun before that has been rendered. The collector may then reuse its arrays.
   */
  readonly release?: () => void;
}

/** One collector bound to one target (a database server, a directory, a URL). */
export interface CollectorInstance {
  readonly collector: string;
  readonly target: string;
  /** Must honour the signal: it is aborted when the collector's timeout expires. */
  collect(signal: AbortSignal): Promise<CollectResult>;
  /** Releases pooled connections and stops background refreshers. */
  close?(): Promise<void>;
}

export interface CollectorContext {
  readonly config: Readonly<Config>;
  readonly log: Logger;
  /**
   * A remediation's newest success per subject as every replica sees it (the shared state store,
   * cached; it never throws); absent or empty without state.postgres.
   */
  readonly successes?: (remediation: string) => Promise<ReadonlyMap<string, SharedSuccess>>;
}

/** A success another replica may have had: when (epoch ms), and what it was about (backup.verify: the file). */
export interface SharedSuccess {
  readonly atMs: number;
  readonly detail: string;
}

/**
 * A collector module: one file in src/collectors, one line in the registry.
 * `upFamily` is set by the framework (1 on success, 0 on failure or timeout) with label
 * `upLabel` = the instance's target, so a dead target still reports itself.
 */
export interface CollectorModule {
  readonly name: string;
  readonly families: readonly FamilySpec[];
  readonly upFamily?: { readonly name: string; readonly help: string; readonly label: string };
  build(context: CollectorContext): CollectorInstance[];
}
