import type { RemediationRule } from '../config/schema.js';
import type { Engine, Submitted } from '../engine/engine.js';
import type { WebhookAlert, WebhookPayload } from './alertmanager-payload.js';
import { matchingRules, templateParams, TemplateError, type RuleMatch } from './rules.js';

export interface AcceptedAlert { fingerprint: string; alertname: string; remediation: string; runId: string; status: string }
/**
 * An alert that queued nothing: no rule matches, a template needs a label it lacks, it resolved
 * (cancelling its queued runs), or the engine rejected its run at once (then with its runId: it is
 * journalled and counted as rejected).
 */
export interface IgnoredAlert { fingerprint: string; alertname: string; status: string; reason: string; remediation?: string; runId?: string }
export interface AlertsHandled { accepted: AcceptedAlert[]; ignored: IgnoredAlert[] }
type Entry = { accepted: AcceptedAlert } | { ignored: IgnoredAlert };

/** The engine as the Alertmanager trigger uses it. */
export type AlertIntake = Pick<Engine, 'submit' | 'cancelQueued' | 'metrics'>;

/**
 * The rules each alert of the payload matches (none for a resolved alert, which only cancels), in
 * the payload's order, and how many runs they ask for: every (firing alert, matching rule) pair.
 * Matched once, for both the queue's room and receiveAlerts.
 */
export function matchAlerts(payload: WebhookPayload, rules: readonly RemediationRule[]): { matches: RuleMatch[][]; wanted: number } {
  let wanted = 0;
  const matches = payload.alerts.map((alert) => {
    const matching = alert.status === 'firing' ? matchingRules(rules, alert.labels) : [];
    wanted += matching.length;
    return matching;
  });
  return { matches, wanted };
}

/**
 * Each alert is handled by its own status: a firing alert submits a run for each rule that matches
 * its labels (`matches`, from matchAlerts), a resolved one cancels its runs that have not started.
 * Resolves, in the payload's order, once every accepted run is journalled. The caller has checked
 * the queue has room.
 */
export async function receiveAlerts(engine: AlertIntake, payload: WebhookPayload, matches: readonly (readonly RuleMatch[])[]): Promise<AlertsHandled> {
  const entries: Array<Entry | Promise<Entry>> = [];
  for (const [position, alert] of payload.alerts.entries()) {
    engine.metrics.alertsReceived.inc({ status: alert.status });
    const alertname = alert.labels.alertname ?? '';
    const ignored = (reason: string): Entry => ({ ignored: { fingerprint: alert.fingerprint, alertname, status: alert.status, reason } });
    if (alert.status === 'resolved') {
      const cancelled = engine.cancelQueued(alert.fingerprint, 'alert resolved before the run started');
      entries.push(ignored(`resolved: cancelled ${cancelled.length} queued run(s)`));
      continue;
    }
    const matching = matches[position] ?? [];
    if (matching.length === 0) {
      entries.push(ignored('no remediation rule matches its labels'));
      continue;
    }
    for (const { rule, index } of matching) {
      const submitted = submitRule(engine, alert, rule, index);
      entries.push('templateError' in submitted ? ignored(submitted.templateError) : outcome(submitted, alert, alertname, rule.remediation));
    }
  }
  const handled: AlertsHandled = { accepted: [], ignored: [] };
  for (const entry of await Promise.all(entries)) {
    if ('accepted' in entry) handled.accepted.push(entry.accepted);
    else handled.ignored.push(entry.ignored);
  }
  return handled;
}

function submitRule(engine: AlertIntake, alert: WebhookAlert, rule: Readonly<RemediationRule>, index: number): Submitted | { templateError: string } {
  let params: Record<string, string | number | boolean>;
  try {
    params = templateParams(rule.params, alert.labels);
  } catch (err) {
    if (err instanceof TemplateError) return { templateError: `rule remediation.rules[${index}]: ${err.message}` };
    throw err;
  }
  return engine.submit({
    remediation: rule.remediation, params, trigger: 'alert', allowRisk: rule.allowRisk, source: `remediation.rules[${index}]`,
    ...(rule.dryRun !== undefined ? { dryRun: rule.dryRun } : {}),
    alert: { fingerprint: alert.fingerprint, startsAt: alert.startsAt, alertname: alert.labels.alertname ?? '', labels: alert.labels },
  });
}

/** Accepted with its status once journalled; rejected by the engine's screen, ignored with the reason. */
async function outcome(submitted: Submitted, alert: WebhookAlert, alertname: string, remediation: string): Promise<Entry> {
  const status = await submitted.journalled;
  if (status === 'rejected') {
    const { reason } = await submitted.done;
    return { ignored: { fingerprint: alert.fingerprint, alertname, status: alert.status, reason: `rejected: ${reason ?? 'no reason given'}`, remediation, runId: submitted.runId } };
  }
  return { accepted: { fingerprint: alert.fingerprint, alertname, remediation, runId: submitted.runId, status } };
}
