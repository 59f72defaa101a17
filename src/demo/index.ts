import { pino } from 'pino';
import { createLogger } from '../log.js';
import { PROBLEMS, readProblems, renderTable } from './report.js';
import { startScenario, type JournalRun, type Scenario } from './scenario.js';

export interface DemoIo {
  out: (line: string) => void;
  /** Resolves when the operator asks to stop (Ctrl-C). */
  interrupted: () => Promise<void>;
}

export interface DemoResult {
  before: (number | undefined)[];
  after: (number | undefined)[];
  fixed: boolean[];
  firedAlerts: string[];
  /** Seconds from the alert being seen firing to the problem's metric being healthy, per problem. */
  secondsToFix: (number | undefined)[];
  runs: JournalRun[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What watchFixes reads of a scenario: upkeep's metrics and journal, Prometheus's alerts. */
export type WatchedScenario = Pick<Scenario, 'metrics' | 'runs'> & { readonly prometheus: Pick<Scenario['prometheus'], 'alerts'> };

/**
 * Watches the loop until every problem is fixed and its alert has resolved, or the deadline
 * passes. Returns what it saw; printing is the caller's business.
 */
export async function watchFixes(scenario: WatchedScenario, onAlert: (name: string) => void, deadlineMs = 240_000, signal?: AbortSignal): Promise<DemoResult> {
  const before = readProblems(await scenario.metrics(), Date.now() / 1000);
  const watched = new Set(PROBLEMS.map((p) => p.alert));
  const fired = new Map<string, number>();
  const fixedAt: (number | undefined)[] = PROBLEMS.map(() => undefined);
  const deadline = Date.now() + deadlineMs;
  let after = before;
  let fixed = PROBLEMS.map(() => false);
  const fire = (name: string, at: number) => {
    if (!watched.has(name) || fired.has(name)) return;
    fired.set(name, at);
    onAlert(name);
  };
  while (Date.now() < deadline) {
    signal?.throwIfAborted();
    for (const alert of await scenario.prometheus.alerts()) {
      // Prometheus's activeAt is when the condition was first true; with `for: 0s` that is when it fired.
      if (alert.state === 'firing') fire(alert.labels.alertname ?? '', alert.activeAt ? Date.parse(alert.activeAt) : Date.now());
    }
    after = readProblems(await scenario.metrics(), Date.now() / 1000);
    fixed = PROBLEMS.map((problem, index) => problem.fixed(after[index]));
    fixed.forEach((isFixed, index) => { if (isFixed && fixedAt[index] === undefined) fixedAt[index] = Date.now(); });
    const stillFiring = (await scenario.prometheus.alerts()).some((a) => watched.has(a.labels.alertname ?? ''));
    const runs = await scenario.runs();
    // An alert fixed and resolved between two looks at Prometheus still fired: its run says so,
    // and its startsAt is Prometheus's activeAt as Alertmanager passed it on.
    for (const run of runs) if (run.alert) fire(run.alert.alertname, Date.parse(run.alert.startsAt));
    const allRan = PROBLEMS.every((problem) => runs.some((run) => run.remediation === problem.remediation && run.status === 'success'));
    if (fixed.every(Boolean) && allRan && fired.size > 0 && !stillFiring) break;
    await sleep(1000);
  }
  const secondsToFix = PROBLEMS.map((problem, index) => {
    const firedAt = fired.get(problem.alert);
    const at = fixedAt[index];
    return firedAt === undefined || at === undefined ? undefined : Math.max(0, (at - firedAt) / 1000);
  });
  return { before, after, fixed, firedAlerts: [...fired.keys()], secondsToFix, runs: await scenario.runs() };
}

export function summarize(result: DemoResult): string {
  const rows = PROBLEMS.map((problem, index) => {
    const run = result.runs.find((candidate) => candidate.remediation === problem.remediation && candidate.status === 'success');
    return [
      problem.name,
      problem.format(result.before[index]),
      problem.format(result.after[index]),
      problem.alert,
      `${problem.remediation}${run ? ` (${run.trigger}, ${run.status})` : ''}`,
      result.fixed[index] ? 'fixed' : 'NOT FIXED',
      result.secondsToFix[index] === undefined ? '-' : `${result.secondsToFix[index]!.toFixed(1)} s`,
    ];
  });
  return renderTable(['problem', 'before', 'after', 'alert', 'remediation (trigger, status)', 'result', 'firing -> fixed'], rows);
}

// The shell's code for a command ended by Ctrl-C (128 + SIGINT's 2).
const INTERRUPTED = 130;

export async function runDemo(options: { once: boolean; port?: number; logLevel?: string }, io: DemoIo): Promise<number> {
  // Logs go to stderr at warn so the terminal shows the story, not the chatter.
  const log = createLogger({ level: options.logLevel ?? 'warn', destination: pino.destination(2) });
  // Ctrl-C at any point stops and removes what the demo started: before, one during the start or
  // the tour ended the process at once and left the servers' directories in TMPDIR. A second
  // Ctrl-C, with no listener left, ends it at once. Listened for before the first line is printed,
  // so a Ctrl-C that answers it is caught.
  const stopping = new AbortController();
  const interrupted = io.interrupted().then(() => {
    io.out('Interrupted: stopping upkeep and removing the throwaway servers...');
    stopping.abort();
  });
  io.out('upkeep demo: starting throwaway PostgreSQL and Redis, making the problems the runbooks fight...');
  let scenario: Scenario;
  try {
    scenario = await startScenario({ log, port: options.port, signal: stopping.signal });
  } catch (err) {
    if (stopping.signal.aborted) return INTERRUPTED;
    throw err;
  }
  try {
    io.out(`upkeep is serving ${scenario.url}/metrics; Prometheus at ${scenario.prometheus.url}, Alertmanager at ${scenario.alertmanager.url}${scenario.docker ? '; Docker is reachable and monitored' : ''}.`);
    io.out('Waiting for the shipped alert rules to fire and upkeep to fix what they point at...');
    const result = await watchFixes(scenario, (name) => io.out(`  alert firing: ${name}`), undefined, stopping.signal).catch((err: unknown) => {
      if (stopping.signal.aborted) return null;
      throw err;
    });
    if (result === null) return INTERRUPTED;
    io.out('');
    io.out(summarize(result));
    io.out('');
    io.out(`journal: ${result.runs.length} run(s); see ${scenario.url}/runs`);
    const allFixed = result.fixed.every(Boolean);
    if (!allFixed) io.out('Some problems were not fixed in time; the journal says why.');
    if (options.once) return allFixed ? 0 : 1;
    io.out('Still serving /metrics. Press Ctrl-C to stop.');
    await interrupted;
    return 0;
  } finally {
    await scenario.stop();
  }
}
