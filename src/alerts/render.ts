import { stringify } from 'yaml';
import { promDuration } from './format.js';
import type { Thresholds } from './thresholds.js';
import type { AlertRule, RuleGroup } from './types.js';

/** The file `upkeep rules` writes, and the one name it writes it under. */
export const RULES_FILE = 'upkeep.rules.yml';

const HEADER = `# Alert rules for upkeep's metrics, rendered by \`upkeep rules\` from its thresholds file (the
# shipped defaults are the ones the RefNet and ai-micro-service runbooks use, shared/runbooks).
# Do not edit: change a threshold, the job selector or the runbook base URL in a thresholds file
# (examples/thresholds.yml) and run \`upkeep rules --thresholds FILE --out DIR\`.
# Each alert links to docs/runbooks/<AlertName>.md. Label sets matter: upkeep's remediation
# rules template their parameters from these labels (PostgresDeadTuplesHigh keeps target,
# database, schema and table so postgres.vacuum can run on exactly that table).
# Checked by \`promtool check rules\` and \`promtool test rules alerts/upkeep.rules.test.yml\`.
`;

/** A YAML scalar on one line: plain where that is safe, quoted where it is not. */
function scalar(text: string): string {
  return stringify(text, { lineWidth: 0 }).trimEnd();
}

/** A block literal for a multi-line expression, kept exactly (no trailing newline). */
function block(text: string, indent: string): string {
  return `|-\n${text.split('\n').map((line) => `${indent}${line}`).join('\n')}`;
}

function comment(text: string, indent: string): string[] {
  return text.split('\n').map((line) => `${indent}# ${line}`);
}

function rule(alert: AlertRule, runbookBaseUrl: string): string[] {
  const at = '        ';
  return [
    `      - alert: ${alert.alert}`,
    ...(alert.why ? comment(alert.why, at) : []),
    `${at}expr: ${alert.expr.includes('\n') ? block(alert.expr, `${at}  `) : scalar(alert.expr)}`,
    ...(alert.forSeconds === undefined ? [] : [`${at}for: ${promDuration(alert.forSeconds)}`]),
    `${at}labels:`,
    `${at}  severity: ${alert.severity}`,
    `${at}annotations:`,
    `${at}  summary: ${scalar(alert.summary)}`,
    `${at}  description: ${scalar(alert.description)}`,
    `${at}  runbook_url: ${scalar(`${runbookBaseUrl}${alert.alert}.md`)}`,
  ];
}

/** alerts/upkeep.rules.yml for these groups. */
export function renderRules(groups: readonly RuleGroup[], thresholds: Pick<Thresholds, 'runbookBaseUrl'>): string {
  const lines = [HEADER.trimEnd(), 'groups:'];
  groups.forEach((group, index) => {
    if (index > 0) lines.push('');
    lines.push(`  - name: ${group.name}`, '    rules:');
    group.rules.forEach((alert, ruleIndex) => {
      if (ruleIndex > 0) lines.push('');
      lines.push(...rule(alert, thresholds.runbookBaseUrl));
    });
  });
  return `${lines.join('\n')}\n`;
}
