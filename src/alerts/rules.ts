import { diskRules } from './disk.js';
import { dockerRules, httpRules } from './docker.js';
import { backupRules, logRules } from './files.js';
import { postgresHorizonRules } from './postgres-horizon.js';
import { postgresRules } from './postgres.js';
import { redisRules } from './redis.js';
import { remediationRules } from './remediation.js';
import { selfRules } from './self.js';
import { DEFAULT_THRESHOLDS, type Thresholds } from './thresholds.js';
import type { RuleContext, RuleGroup } from './types.js';

const GROUPS = [diskRules, backupRules, logRules, postgresRules, postgresHorizonRules, redisRules, dockerRules, httpRules, selfRules, remediationRules];

/** Every group of upkeep's alert rules, written with these thresholds. */
export function ruleGroups(thresholds: Thresholds): RuleGroup[] {
  const context: RuleContext = {
    thresholds,
    series: (metric, extra) => `${metric}{${[thresholds.selector, extra].filter((part) => part).join(',')}}`,
  };
  return GROUPS.map((group) => group(context)).map((group) => ({
    ...group,
    rules: group.rules.map((rule) => {
      const forSeconds = thresholds.for[rule.alert] ?? rule.forSeconds;
      return forSeconds === undefined ? rule : { ...rule, forSeconds };
    }),
  }));
}

/** The name of every alert, in file order. */
export const ALERT_NAMES: readonly string[] = ruleGroups(DEFAULT_THRESHOLDS).flatMap((group) => group.rules.map((rule) => rule.alert));
