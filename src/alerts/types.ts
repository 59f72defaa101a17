import type { Thresholds } from './thresholds.js';

export interface AlertRule {
  readonly alert: string;
  /** Why the rule is written this way; a comment above its expression in the rendered file. */
  readonly why?: string;
  readonly expr: string;
  /** Seconds the condition must hold (`for:`); none fires on the first evaluation. */
  readonly forSeconds?: number;
  readonly severity: 'critical' | 'warning';
  /** Plain text, one sentence. */
  readonly summary: string;
  /** A Prometheus template: `{{ $labels.x }}`, `{{ $value }}`. */
  readonly description: string;
}

export interface RuleGroup {
  readonly name: string;
  readonly rules: readonly AlertRule[];
}

/** What a group's rules are written with: the thresholds and a selector for upkeep's series. */
export interface RuleContext {
  readonly thresholds: Thresholds;
  /** `metric{<selector>,<extra>}`: every series the rules read is filtered by the job selector. */
  readonly series: (metric: string, extra?: string) => string;
}
