import { DAYS, parseCron, type CronFields } from '../config/cron.js';

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
