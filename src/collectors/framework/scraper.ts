import { Readable } from 'node:stream';
import type { Registry } from 'prom-client';
import { errorMessage, type Logger } from '../../log.js';
import { Publication, reading } from './publication.js';
import { asStrings, exposition, type FamilyText } from './text.js';
import { registerSnapshot, type FamilyPart, type SnapshotMetric } from './snapshot.js';
import type { BlockColumn, CacheAge, CollectorInstance, CollectorModule, FamilySpec, Labels, Reading, SeriesBlock } from './types.js';

export interface TargetStatus {
  collector: string;
  target: string;
  up: boolean;
  lastSuccessSeconds: number | null;
  lastError: string | null;
}

interface InstanceState {
  instance: CollectorInstance;
  module: CollectorModule;
  pending: Promise<unknown> | null;
  status: TargetStatus;
  durationSeconds: number;
  readings: readonly Reading[];
  blocks: readonly SeriesBlock[];
  cacheAges: readonly CacheAge[];
  /** The last result's release, until a publication takes it. */
  release: (() => void) | null;
}

const META: readonly FamilySpec[] = [
  { name: 'upkeep_collector_up', help: 'Whether the last collection of this collector and target succeeded (1) or failed or timed out (0).', type: 'gauge', labelNames: ['collector', 'target'] },
  { name: 'upkeep_collector_duration_seconds', help: 'How long the last collection of this collector and target took.', type: 'gauge', labelNames: ['collector', 'target'] },
  { name: 'upkeep_collector_last_success_timestamp_seconds', help: 'Unix time of the last successful collection of this collector and target.', type: 'gauge', labelNames: ['collector', 'target'] },
  { name: 'upkeep_collector_cache_age_seconds', help: 'Age of a reading served from cache, refreshed on its own interval.', type: 'gauge', labelNames: ['collector', 'target', 'reading'] },
];

export class TimeoutError extends Error {
  constructor(seconds: number) {
    super(`timed out after ${seconds}s`);
    this.name = 'TimeoutError';
  }
}

/**
 * Runs every collector instance concurrently on each scrape, each under its own timeout, and
 * publishes the results into the app's registry. One slow or broken target only costs its own
 * series; overlapping scrapes share the collection in flight.
 */

// What /readyz says of a target before its first collection (not a failure: nothing to recover from).
const NOT_SCRAPED = 'not scraped yet';
export class Scraper {
  private readonly states: InstanceState[] = [];
  private readonly families = new Map<string, SnapshotMetric>();
  private inFlight: Promise<void> | null = null;
  private published = new Publication([]);
  private owns: (collector: string, target: string) => boolean = () => true;

  constructor(
    private readonly registry: Registry,
    modules: readonly CollectorModule[],
    instances: ReadonlyMap<CollectorModule, CollectorInstance[]>,
    private readonly timeoutSeconds: number,
    private readonly log: Logger,
  ) {
    for (const spec of META) this.families.set(spec.name, registerSnapshot(registry, spec));
    for (const module of modules) {
      const specs = [...module.families];
      if (module.upFamily) specs.push({ name: module.upFamily.name, help: module.upFamily.help, type: 'gauge', labelNames: [module.upFamily.label] });
      for (const spec of specs) {
        if (!this.families.has(spec.name)) this.families.set(spec.name, registerSnapshot(registry, spec));
      }
      for (const instance of instances.get(module) ?? []) {
        this.states.push({
          instance, module, pending: null, durationSeconds: 0, readings: [], blocks: [], cacheAges: [], release: null,
          status: { collector: instance.collector, target: instance.target, up: false, lastSuccessSeconds: null, lastError: NOT_SCRAPED },
        });
      }
    }
  }

  /**
   * Collects (sharing a collection already in flight) and returns the registry's exposition, each
   * caller its own: the collectors' families straight to text, the others (engine, build info)
   * through prom-client, rendered as the reader asks for slices. A slice is only valid until the
   * next is asked for (its buffer is reused): send or copy it first.
   */
  async slices(): Promise<AsyncGenerator<Uint8Array>> {
    if (!this.inFlight) this.inFlight = this.collectAll().finally(() => { this.inFlight = null; });
    await this.inFlight;
    const ended = this.published.read();
    const families: FamilyText[] = this.registry.getMetricsAsArray().map(({ name }) => this.families.get(name)?.render() ?? { text: () => this.registry.getSingleMetricAsString(name) });
    return reading(exposition(families), ended);
  }

  /** The exposition as a stream of strings, for readers in the process (the tests). */
  async scrape(): Promise<Readable> {
    return Readable.from(asStrings(await this.slices()), { highWaterMark: 1 });
  }

  /**
   * From now on, collects and publishes only the targets `owns` accepts: with replicas sharing
   * the targets out, another replica exposes the rest. Every target by default.
   */
  collectOnly(owns: (collector: string, target: string) => boolean): void {
    this.owns = owns;
  }

  /** The targets this replica collects. */
  statuses(): TargetStatus[] {
    return this.mine().map((state) => ({ ...state.status }));
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.states.map((state) => state.instance.close?.()));
  }

  private mine(): InstanceState[] {
    return this.states.filter((state) => this.owns(state.instance.collector, state.instance.target));
  }

  private async collectAll(): Promise<void> {
    const mine = this.mine();
    await Promise.all(mine.map((state) => this.collectOne(state)));
    this.publish(mine);
  }

  private async collectOne(state: InstanceState): Promise<void> {
    const started = performance.now();
    const { instance } = state;
    // A collection that outlived its timeout may still be hanging: never stack a second one on it.
    if (state.pending) {
      this.fail(state, 'previous collection still running', started);
      return;
    }
    const controller = new AbortController();
    const work = instance.collect(controller.signal);
    state.pending = work;
    work.then(() => undefined, () => undefined).finally(() => { state.pending = null; });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        controller.abort();
        reject(new TimeoutError(this.timeoutSeconds));
      }, this.timeoutSeconds * 1000);
    });
    try {
      const result = await Promise.race([work, timeout]);
      state.readings = result.readings;
      state.blocks = result.blocks ?? [];
      state.cacheAges = result.cacheAges ?? [];
      state.release = result.release ?? null;
      state.durationSeconds = (performance.now() - started) / 1000;
      // The failure was logged once; so is the end of it, or the log never says the target is back.
      if (state.status.lastError !== null && state.status.lastError !== NOT_SCRAPED) this.log.info({ collector: instance.collector, target: instance.target }, 'collection recovered');
      state.status = { ...state.status, up: true, lastSuccessSeconds: Date.now() / 1000, lastError: null };
    } catch (err) {
      // Shown in /readyz and the log: a URL's password or a Redis command's arguments are masked.
      this.fail(state, errorMessage(err), started);
    } finally {
      clearTimeout(timer);
    }
  }

  private fail(state: InstanceState, message: string, started: number): void {
    if (state.status.lastError !== message) {
      this.log.warn({ collector: state.instance.collector, target: state.instance.target, err: message }, 'collection failed');
    }
    state.readings = [];
    state.blocks = [];
    state.cacheAges = [];
    state.release = null;
    state.durationSeconds = (performance.now() - started) / 1000;
    state.status = { ...state.status, up: false, lastError: message };
  }

  private publish(states: readonly InstanceState[]): void {
    const byFamily = new Map<string, FamilyPart[]>();
    for (const name of this.families.keys()) byFamily.set(name, []);
    const partsOf = (family: string): FamilyPart[] => {
      const parts = byFamily.get(family);
      if (!parts) throw new Error(`collector emitted undeclared metric family ${family}`);
      return parts;
    };
    // Readings of a family in a row share one list, in the order they came.
    const push = (family: string, labels: Labels, value: number) => {
      const parts = partsOf(family);
      const last = parts.at(-1);
      if (last && 'readings' in last) last.readings.push({ family, labels, value });
      else parts.push({ readings: [{ family, labels, value }] });
    };
    for (const state of states) {
      const { collector, target } = state.instance;
      const meta = { collector, target };
      push('upkeep_collector_up', meta, state.status.up ? 1 : 0);
      push('upkeep_collector_duration_seconds', meta, state.durationSeconds);
      if (state.status.lastSuccessSeconds !== null) push('upkeep_collector_last_success_timestamp_seconds', meta, state.status.lastSuccessSeconds);
      for (const age of state.cacheAges) push('upkeep_collector_cache_age_seconds', { ...meta, reading: age.reading }, age.ageSeconds);
      for (const reading of state.readings) push(reading.family, reading.labels, reading.value);
      for (const block of state.blocks) {
        const columns = new Map<string, BlockColumn[]>();
        for (const column of block.columns) columns.set(column.family, [...(columns.get(column.family) ?? []), column]);
        for (const [family, familyColumns] of columns) partsOf(family).push({ block, columns: familyColumns });
      }
      const upFamily = state.module.upFamily;
      // A collector may report its target down while the collection itself worked (an HTTP 500).
      const reportedItself = state.readings.some((reading) => reading.family === upFamily?.name);
      if (upFamily && !reportedItself) push(upFamily.name, { [upFamily.label]: target }, state.status.up ? 1 : 0);
    }
    for (const [name, parts] of byFamily) this.families.get(name)!.replace(parts);
    const releases: (() => void)[] = [];
    for (const state of states) {
      if (state.release) releases.push(state.release);
      state.release = null;
    }
    const previous = this.published;
    this.published = new Publication(releases);
    previous.replace();
  }
}
