import { Counter, Gauge, Histogram, type Registry } from '../prom.js';
import type { RunStatus } from './journal.js';

export type Outcome = 'success' | 'failure' | 'skipped' | 'rejected' | 'dry_run';

/** How a final run status is counted in upkeep_remediation_runs_total; null: not counted (still in flight). */
export function outcomeOf(status: RunStatus): Outcome | null {
  switch (status) {
    case 'success': return 'success';
    case 'dry_run': return 'dry_run';
    // A run that died with the process did not do its job: it counts against the remediation.
    case 'failure': case 'interrupted': return 'failure';
    // Refused input (a bad label, a name outside what the target watches): its own outcome, with its
    // own alert, and never a failure, so it cannot open the circuit breaker.
    case 'rejected': return 'rejected';
    case 'skipped': case 'duplicate': case 'cancelled': return 'skipped';
    default: return null;
  }
}

const OUTCOMES: readonly Outcome[] = ['success', 'failure', 'skipped', 'rejected', 'dry_run'];

/** How long a scrape waits for the circuit breakers' state before it serves what it read last. */
export const CIRCUIT_READ_MS = 1_000;

/**
 * The circuit breakers' state for the exposition, read from the guards' memory (state.postgres
 * with replicas). With that database down, the read failed and took the whole exposition with it
 * on every replica (every target's series lost), and with it stalled each scrape hung for the
 * statement timeout (10 s, Prometheus's whole scrape timeout). A read that fails or outlasts
 * CIRCUIT_READ_MS now leaves the last values in place; one still running is not started again.
 */
export class CircuitReadings {
  private readonly last = new Map<string, boolean>();
  private inFlight: Promise<void> | null = null;

  constructor(private readonly remediations: readonly string[], private readonly circuitOpen: (remediation: string) => Promise<boolean>, private readonly waitMs = CIRCUIT_READ_MS) {}

  async read(): Promise<ReadonlyMap<string, boolean>> {
    this.inFlight ??= Promise.allSettled(this.remediations.map((remediation) => this.circuitOpen(remediation))).then((results) => {
      results.forEach((result, index) => {
        const remediation = this.remediations[index];
        if (result.status === 'fulfilled' && remediation !== undefined) this.last.set(remediation, result.value);
      });
    }).finally(() => { this.inFlight = null; });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.inFlight, new Promise((resolve) => { timer = setTimeout(resolve, this.waitMs); })]);
    clearTimeout(timer);
    return this.last;
  }
}

/** The remediation families on the app's registry. */
export class RemediationMetrics {
  readonly runs: Counter<'remediation' | 'outcome'>;
  readonly duration: Histogram<'remediation'>;
  readonly lastSuccess: Gauge<'remediation'>;
  readonly running: Gauge<'remediation'>;
  readonly alertsReceived: Counter<'status'>;
  readonly late: Counter<'remediation'>;

  constructor(registry: Registry, remediations: readonly string[], circuitOpen: (remediation: string) => Promise<boolean>) {
    const registers = [registry];
    this.runs = new Counter({ name: 'upkeep_remediation_runs_total', help: 'Remediation runs by outcome (success, failure, skipped, rejected, dry_run).', labelNames: ['remediation', 'outcome'], registers });
    this.duration = new Histogram({
      name: 'upkeep_remediation_duration_seconds', help: 'How long remediation runs that executed took, from start to verification.',
      labelNames: ['remediation'], buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600], registers,
    });
    this.lastSuccess = new Gauge({ name: 'upkeep_remediation_last_success_timestamp_seconds', help: 'Unix time of the last successful run of each remediation.', labelNames: ['remediation'], registers });
    this.running = new Gauge({ name: 'upkeep_remediation_running', help: 'Runs of each remediation executing now.', labelNames: ['remediation'], registers });
    const circuits = new CircuitReadings(remediations, circuitOpen);
    new Gauge({
      name: 'upkeep_remediation_circuit_open', help: 'Whether the circuit breaker refuses automatic runs of this remediation (1) or not (0).',
      labelNames: ['remediation'], registers,
      async collect() {
        for (const [remediation, open] of await circuits.read()) this.set({ remediation }, open ? 1 : 0);
      },
    });
    this.late = new Counter({
      name: 'upkeep_remediation_late_outcomes_total',
      help: 'Runs that ended after a peer had journalled them interrupted (this replica stalled past its lease); the journal keeps interrupted.',
      labelNames: ['remediation'], registers,
    });
    this.alertsReceived = new Counter({ name: 'upkeep_alerts_received_total', help: 'Alerts received on the Alertmanager webhook, by alert status.', labelNames: ['status'], registers });
    // Every series exists from the start, so rate() and absent() behave before the first run.
    for (const remediation of remediations) {
      for (const outcome of OUTCOMES) this.runs.inc({ remediation, outcome }, 0);
      this.running.set({ remediation }, 0);
      this.late.inc({ remediation }, 0);
    }
    for (const status of ['firing', 'resolved']) this.alertsReceived.inc({ status }, 0);
  }

  finished(remediation: string, status: RunStatus, durationSeconds: number | null, finishedAtMs: number): void {
    const outcome = outcomeOf(status);
    if (outcome === null) return;
    this.runs.inc({ remediation, outcome });
    if (durationSeconds !== null) this.duration.observe({ remediation }, durationSeconds);
    if (status === 'success') this.lastSuccess.set({ remediation }, finishedAtMs / 1000);
  }
}
