import { ConfigInvalid, describeIssue, readConfigText, ZOD_MESSAGES, type ConfigError } from '../config/load.js';
import { formatPath } from '../config/interpolate.js';
import { didYouMean } from '../names.js';
import { readYaml } from '../config/yaml.js';
import { ALERT_NAMES } from './rules.js';
import { thresholdsSchema, type Thresholds } from './thresholds.js';

export type ThresholdsResult = { ok: true; thresholds: Thresholds } | { ok: false; errors: ConfigError[] };

/**
 * Every `for:` override must name an alert: a typo would otherwise change nothing, silently.
 * Read from the file as written, so a wrong value elsewhere does not hide a wrong name.
 */
function unknownAlerts(raw: unknown): ConfigError[] {
  const overrides = typeof raw === 'object' && raw !== null && 'for' in raw ? raw.for : null;
  if (typeof overrides !== 'object' || overrides === null || Array.isArray(overrides)) return [];
  return Object.keys(overrides).filter((name) => !ALERT_NAMES.includes(name))
    .map((name) => ({ path: formatPath(['for', name]), message: `names no alert${didYouMean(name, ALERT_NAMES)}` }));
}

/** Thresholds from YAML text; errors name their path, as config errors do. */
export function parseThresholds(text: string): ThresholdsResult {
  const raw = readYaml(text);
  if (!raw.ok) return raw;
  const result = thresholdsSchema.safeParse(raw.value, ZOD_MESSAGES);
  const errors = [...(result.success ? [] : result.error.issues.flatMap((issue) => describeIssue(issue))), ...unknownAlerts(raw.value)];
  return result.success && errors.length === 0 ? { ok: true, thresholds: result.data } : { ok: false, errors };
}

/** Reads and checks a thresholds file; throws ConfigInvalid naming each error's path. */
export function loadThresholds(file: string): Thresholds {
  const result = parseThresholds(readConfigText(file));
  if (!result.ok) throw new ConfigInvalid(file, result.errors);
  return result.thresholds;
}
