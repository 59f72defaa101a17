import type { RemediationRule } from '../config/schema.js';
import { LABEL_PLACEHOLDER } from '../config/template.js';

/** A rule an alert matches, with its index in remediation.rules. */
export interface RuleMatch { readonly rule: RemediationRule; readonly index: number }

/** Rules whose every `match` label equals the alert's label of the same name, with their index. */
export function matchingRules(rules: readonly RemediationRule[], labels: Readonly<Record<string, string>>): RuleMatch[] {
  const matching: RuleMatch[] = [];
  rules.forEach((rule, index) => { if (matches(rule, labels)) matching.push({ rule, index }); });
  return matching;
}

/** Whether the rule's every `match` label equals the alert's; asked for each rule of each alert, so it copies nothing. */
function matches(rule: RemediationRule, labels: Readonly<Record<string, string>>): boolean {
  for (const name in rule.match) {
    if (Object.hasOwn(rule.match, name) && labels[name] !== rule.match[name]) return false;
  }
  return true;
}

export class TemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TemplateError';
  }
}

/**
 * Fills `{{labels.x}}` placeholders from the alert's labels. The result is still untrusted text:
 * the action validates it against its schema and the live catalog before anything uses it.
 */
export function templateParams(
  params: Readonly<Record<string, string | number | boolean>>,
  labels: Readonly<Record<string, string>>,
): Record<string, string | number | boolean> {
  const filled: Record<string, string | number | boolean> = {};
  for (const [key, value] of Object.entries(params)) {
    if (typeof value !== 'string') {
      filled[key] = value;
      continue;
    }
    filled[key] = value.replace(LABEL_PLACEHOLDER, (_placeholder, label: string) => {
      const labelValue = labels[label];
      if (labelValue === undefined) throw new TemplateError(`param "${key}" needs label "${label}", which the alert does not have`);
      return labelValue;
    });
  }
  return filled;
}
