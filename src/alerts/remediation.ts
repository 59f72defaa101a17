import { duration, secondsExpr } from './format.js';
import type { RuleContext, RuleGroup } from './types.js';

/** Runs of one outcome in the last hour, including those of a counter that is new within the hour. */
function outcomeInLastHour(series: RuleContext['series'], outcome: string): string {
  const runs = series('upkeep_remediation_runs_total', `outcome="${outcome}"`);
  return [
    `sum by (job, instance, remediation) (increase(${runs}[1h])) > 0`,
    'or',
    'sum by (job, instance, remediation) (',
    `  ${runs} > 0`,
    `  unless ${runs} offset 1h`,
    ')',
  ].join('\n');
}

export function remediationRules({ thresholds: { upkeep }, series }: RuleContext): RuleGroup {
  return {
    name: 'upkeep-remediation',
    rules: [
      {
        alert: 'UpkeepRemediationFailing',
        why: 'increase() misses the first failure of a series that did not exist before (a fresh\nprocess): the second arm catches a failure counter that is new within the hour.',
        expr: outcomeInLastHour(series, 'failure'),
        severity: 'warning',
        summary: 'A remediation failed in the last hour.',
        description: '{{ $labels.remediation }} failed about {{ $value | printf "%.0f" }} time(s) in the last hour; see GET /runs?remediation={{ $labels.remediation }}&status=failure.',
      },
      {
        alert: 'UpkeepRemediationRejected',
        why: [
          'A rejected run is refused input, never a failure (it cannot open the circuit): an alert or',
          'schedule naming something upkeep must not touch, or a rule whose params do not fit.',
          'The second arm catches a counter that is new within the hour, as UpkeepRemediationFailing does.',
        ].join('\n'),
        expr: outcomeInLastHour(series, 'rejected'),
        severity: 'warning',
        summary: 'upkeep rejected a remediation run in the last hour.',
        description: 'upkeep refused about {{ $value | printf "%.0f" }} run(s) of {{ $labels.remediation }} in the last hour because of what they named (a system catalog, a table or database the target does not watch) or invalid params; see GET /runs?remediation={{ $labels.remediation }}&status=rejected.',
      },
      {
        alert: 'UpkeepRemediationCircuitOpen',
        expr: `${series('upkeep_remediation_circuit_open')} > 0`,
        forSeconds: 60,
        severity: 'critical',
        summary: "A remediation's circuit breaker is open and automatic runs are stopped.",
        description: 'Automatic runs of {{ $labels.remediation }} are stopped after repeated failures; the problems it fixes now need a person.',
      },
      {
        alert: 'UpkeepScheduleMissed',
        why: [
          'The next-run time of a schedule entry moves on when its tick starts a run; one left in the',
          'past did not start (upkeep busy or stalled, or the previous run still going). Prometheus',
          'stores the entry name as exported_job, the scrape job being job.',
        ].join('\n'),
        expr: `time() - ${series('upkeep_schedule_next_run_timestamp_seconds')} > ${secondsExpr(upkeep.scheduleLate)}`,
        forSeconds: 300,
        severity: 'warning',
        summary: 'A scheduled run did not start on time.',
        description: `Schedule entry {{ $labels.exported_job }} on {{ $labels.instance }} was due {{ $value | humanizeDuration }} ago and has not started (threshold ${duration(upkeep.scheduleLate)}); the maintenance it runs is not being done.`,
      },
    ],
  };
}
