import { errorMessage } from '../log.js';

/**
 * Classic 5-field cron expressions, as maintenance windows use them. Parsing lives with the config
 * so a bad window is a config error at start; the remediation engine evaluates the parsed fields.
 */
export interface CronFields {
  readonly minute: ReadonlySet<number>;
  readonly hour: ReadonlySet<number>;
  readonly dayOfMonth: ReadonlySet<number>;
  readonly month: ReadonlySet<number>;
  readonly dayOfWeek: ReadonlySet<number>;
  // Classic cron: when both day fields are restricted, either one matching is enough.
  readonly daysRestricted: { dayOfMonth: boolean; dayOfWeek: boolean };
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
export const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

function parseValue(text: string, min: number, names: readonly string[] | null, field: string): number {
  const index = names ? names.indexOf(text.toLowerCase()) : -1;
  if (index >= 0) return index + min;
  if (!/^\d+$/.test(text)) throw new Error(`${field}: "${text}" is not a number`);
  return Number(text);
}

function parseField(text: string, min: number, max: number, field: string, names: readonly string[] | null = null): Set<number> {
  const values = new Set<number>();
  for (const part of text.split(',')) {
    const [range, stepText] = part.split('/');
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1) throw new Error(`${field}: bad step in "${part}"`);
    let low = min;
    let high = max;
    if (range !== '*') {
      const [from, to] = (range ?? '').split('-');
      low = parseValue(from ?? '', min, names, field);
      high = to === undefined ? (stepText === undefined ? low : max) : parseValue(to, min, names, field);
    }
    if (low < min || high > max || low > high) throw new Error(`${field}: "${part}" is outside ${min}-${max}`);
    for (let value = low; value <= high; value += step) values.add(value);
  }
  return values;
}

/** Parses a 5-field cron expression (minute hour day-of-month month day-of-week); throws with the bad field. */
export function parseCron(expression: string): CronFields {
  const parts = expression.trim().split(/\s+/);
  if (parts.length !== 5) throw new Error(`must have 5 fields (minute hour day-of-month month day-of-week), not ${parts.length}`);
  const [minute, hour, dayOfMonth, month, dayOfWeek] = parts as [string, string, string, string, string];
  const weekdays = parseField(dayOfWeek, 0, 7, 'day-of-week', DAYS);
  if (weekdays.delete(7)) weekdays.add(0); // 7 is Sunday too
  return {
    minute: parseField(minute, 0, 59, 'minute'),
    hour: parseField(hour, 0, 23, 'hour'),
    dayOfMonth: parseField(dayOfMonth, 1, 31, 'day-of-month'),
    month: parseField(month, 1, 12, 'month', MONTHS),
    dayOfWeek: weekdays,
    daysRestricted: { dayOfMonth: dayOfMonth !== '*', dayOfWeek: dayOfWeek !== '*' },
  };
}

export function cronError(expression: string): string | null {
  try {
    parseCron(expression);
    return null;
  } catch (err) {
    return errorMessage(err);
  }
}
