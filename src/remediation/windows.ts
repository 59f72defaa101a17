/**
 * Maintenance windows: a cron expression says when a window opens, durationMinutes how long it
 * stays open. Pure functions over a clock value, so "is a window open at 02:17?" is a unit test.
 */
export interface WindowSpec {
  readonly name: string;
  readonly cron: string;
  readonly durationMinutes: number;
  readonly timezone?: string;
}

interface CronFields {
  readonly minute: ReadonlySet<number>;
  readonly hour: ReadonlySet<number>;
  readonly dayOfMonth: ReadonlySet<number>;
  readonly month: ReadonlySet<number>;
  readonly dayOfWeek: ReadonlySet<number>;
  // Classic cron: when both day fields are restricted, either one matching is enough.
  readonly daysRestricted: { dayOfMonth: boolean; dayOfWeek: boolean };
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

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
  if (parts.length !== 5) throw new Error(`"${expression}" must have 5 fields (minute hour day-of-month month day-of-week)`);
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
    return (err as Error).message;
  }
}

interface WallClock { minute: number; hour: number; day: number; month: number; weekday: number }

function wallClock(epochMs: number, timezone: string | undefined): WallClock {
  if (!timezone) {
    const date = new Date(epochMs);
    return { minute: date.getMinutes(), hour: date.getHours(), day: date.getDate(), month: date.getMonth() + 1, weekday: date.getDay() };
  }
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: timezone, hourCycle: 'h23', minute: 'numeric', hour: 'numeric', day: 'numeric', month: 'numeric', weekday: 'short',
  }).formatToParts(new Date(epochMs));
  const part = (type: string) => parts.find((candidate) => candidate.type === type)?.value ?? '';
  return {
    minute: Number(part('minute')), hour: Number(part('hour')), day: Number(part('day')), month: Number(part('month')),
    weekday: DAYS.indexOf(part('weekday').toLowerCase()),
  };
}

export function cronMatches(fields: CronFields, epochMs: number, timezone?: string): boolean {
  const at = wallClock(epochMs, timezone);
  if (!fields.minute.has(at.minute) || !fields.hour.has(at.hour) || !fields.month.has(at.month)) return false;
  const byMonthDay = fields.dayOfMonth.has(at.day);
  const byWeekday = fields.dayOfWeek.has(at.weekday);
  const { dayOfMonth, dayOfWeek } = fields.daysRestricted;
  if (dayOfMonth && dayOfWeek) return byMonthDay || byWeekday;
  return byMonthDay && byWeekday;
}

/** The window open at `nowMs` (it started at most durationMinutes ago), or null. */
export function openWindow(windows: readonly WindowSpec[], nowMs: number): WindowSpec | null {
  const minuteStart = Math.floor(nowMs / 60_000) * 60_000;
  for (const window of windows) {
    const fields = parseCron(window.cron);
    for (let minutesAgo = 0; minutesAgo < window.durationMinutes; minutesAgo += 1) {
      if (cronMatches(fields, minuteStart - minutesAgo * 60_000, window.timezone)) return window;
    }
  }
  return null;
}
