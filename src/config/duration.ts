// Durations in config are written the way runbooks say them ("30 days", "6 months", "90s").
const UNIT_SECONDS: Record<string, number> = {
  s: 1, sec: 1, second: 1, seconds: 1,
  m: 60, min: 60, minute: 60, minutes: 60,
  h: 3600, hour: 3600, hours: 3600,
  d: 86400, day: 86400, days: 86400,
  w: 604800, week: 604800, weeks: 604800,
  // A month is 30 days and a year 365: retention policies care about "at least", not calendars.
  mo: 2592000, month: 2592000, months: 2592000,
  y: 31536000, year: 31536000, years: 31536000,
};

/** Parses "30 days", "6 months", "12h" or "90s" into seconds; returns null when it is not a duration. */
export function parseDurationSeconds(text: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$/i.exec(text);
  if (!match) return null;
  const unit = UNIT_SECONDS[match[2]!.toLowerCase()];
  if (unit === undefined) return null;
  return Number(match[1]) * unit;
}
