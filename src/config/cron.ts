import { Cron } from 'croner';
import { errorMessage } from '../log.js';

/**
 * The one cron dialect, for maintenance windows and schedule entries alike: croner's, with 5 fields
 * (minute hour day-of-month month day-of-week) or 6 with seconds first, names (mon, jan), `#` for
 * the nth weekday (`0 1 * * 0#1`), `L`, nicknames (`@daily`), and a start with a step (`5/20`
 * is 5, 25, 45). When both day fields are restricted, either one matching is enough, as in classic cron.
 */
const DIALECT = { mode: '5-or-6-parts', sloppyRanges: true } as const;

/** The expression's occurrences in a time zone (the process's own without one); it schedules nothing. */
export function cronOccurrences(expression: string, timezone?: string): Cron {
  return new Cron(expression, { ...DIALECT, ...(timezone ? { timezone } : {}) });
}

const FIELDS = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day-of-month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12 },
  { name: 'day-of-week', min: 0, max: 7 },
] as const;
const SECOND = { name: 'second', min: 0, max: 59 } as const;

function parses(expression: string): unknown {
  try {
    cronOccurrences(expression);
    return null;
  } catch (err) {
    return err;
  }
}

/** Croner's message for the field, in the words of a config error. */
function describe(field: (typeof FIELDS)[number] | typeof SECOND, text: string, err: unknown): string {
  const message = errorMessage(err).replace(/^CronPattern: /, '');
  if (/stepping|steps/.test(message)) return `${field.name}: bad step in "${text}"`;
  if (err instanceof RangeError || /larger than/.test(message)) return `${field.name}: "${text}" is outside ${field.min}-${field.max}`;
  if (/nth weekday/.test(message)) return `${field.name}: "${text}": the nth weekday must be 1-5, or L for the last`;
  if (/illegal characters|not a number/.test(message)) return `${field.name}: "${text}" is not a number, a name, a range, a list or a step`;
  return `${field.name}: "${text}": ${message}`;
}

/** Why the expression is not a cron expression of the dialect, naming the field at fault; null when it is one. */
export function cronError(expression: string): string | null {
  const err = parses(expression);
  if (err === null) return null;
  const parts = expression.trim().split(/\s+/);
  if (parts.length === 1 && parts[0]?.startsWith('@')) return errorMessage(err).replace(/^CronPattern: /, '');
  if (parts.length !== 5 && parts.length !== 6) {
    return `must have 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first, not ${parts.length}`;
  }
  // Croner says what is wrong but not always in which field, so each field is tried alone (the
  // others `*`) to name the one at fault. Its checks are all within a field, so one always fails.
  const fields = parts.length === 6 ? [SECOND, ...FIELDS] : FIELDS;
  const problems = fields.map((field, index) => {
    const text = parts[index] ?? '';
    const alone = parses(fields.map((_, other) => (other === index ? text : '*')).join(' '));
    return alone === null ? [] : [describe(field, text, alone)];
  });
  return problems.flat()[0] ?? errorMessage(err);
}
