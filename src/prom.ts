/**
 * The prom-client classes upkeep uses, loaded one module each. prom-client's entry point also
 * loads its default process metrics (and with them @opentelemetry/api), the Summary's t-digest,
 * the Pushgateway's HTTP client and the cluster aggregator: about 90 modules and 1.25 MB of heap
 * kept for the process's life (docs/performance.md, "Idle memory"). They are the same modules
 * the entry point re-exports, so a Registry from either is the same class.
 */
import Counter from 'prom-client/lib/counter.js';
import Gauge from 'prom-client/lib/gauge.js';
import Histogram from 'prom-client/lib/histogram.js';
import Registry from 'prom-client/lib/registry.js';

export { Counter, Gauge, Histogram, Registry };
export type { MetricType } from 'prom-client';
