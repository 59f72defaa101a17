// How thresholds are written into rules: in expressions in the units Prometheus computes with
// (seconds, bytes), and in summaries and descriptions the way people say them.

const DAY = 86400;
const HOUR = 3600;
const MINUTE = 60;
const BINARY_UNITS: readonly [string, number][] = [['TiB', 1024 ** 4], ['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]];
const DECIMAL_UNITS: readonly [string, number][] = [['TB', 1e12], ['GB', 1e9], ['MB', 1e6], ['kB', 1e3]];

/** The largest unit that divides `value` into a whole count below 1024 (10 GiB, not 10240 MiB). */
function unitOf(value: number, units: readonly [string, number][]): [string, number] | undefined {
  return units.find(([, size]) => value >= size && value % size === 0 && value / size < 1024);
}

/** A number as PromQL and people read it: 0.8, 10000, 1.25 (never 1e+21 or 0.30000000000000004). */
export function number(value: number): string {
  return String(Number(value.toPrecision(12)));
}

/** Seconds in an expression: `26 * 3600`, `35 * 86400`, `3600`, `600`. */
export function secondsExpr(seconds: number): string {
  if (seconds > DAY && seconds % DAY === 0) return `${seconds / DAY} * 86400`;
  if (seconds > HOUR && seconds % HOUR === 0 && seconds !== DAY) return `${seconds / HOUR} * 3600`;
  return number(seconds);
}

/** Seconds in a sentence: "26h", "35 days", "1 day", "10m", "90s". */
export function duration(seconds: number): string {
  if (seconds >= DAY && seconds % DAY === 0) return seconds === DAY ? '1 day' : `${seconds / DAY} days`;
  if (seconds >= HOUR && seconds % HOUR === 0) return `${seconds / HOUR}h`;
  if (seconds >= MINUTE && seconds % MINUTE === 0) return `${seconds / MINUTE}m`;
  return `${number(seconds)}s`;
}

/** Seconds as a Prometheus duration for `for:` and range selectors: "10m", "1h", "1d", "0s". */
export function promDuration(seconds: number): string {
  const whole = Math.round(seconds * 1000);
  for (const [unit, ms] of [['d', DAY * 1000], ['h', HOUR * 1000], ['m', MINUTE * 1000], ['s', 1000]] as const) {
    if (whole >= ms && whole % ms === 0) return `${whole / ms}${unit}`;
  }
  return whole === 0 ? '0s' : `${whole}ms`;
}

/** Bytes in an expression: `10 * 1024 * 1024 * 1024`. */
export function bytesExpr(bytes: number): string {
  const unit = unitOf(bytes, BINARY_UNITS);
  if (!unit) return number(bytes);
  const factors = Array.from({ length: Math.round(Math.log2(unit[1]) / 10) }, () => '1024').join(' * ');
  const count = bytes / unit[1];
  return count === 1 ? factors : `${count} * ${factors}`;
}

/** Bytes in a sentence: "1 GiB", "100 MiB", "10 GB", "1500 bytes". */
export function bytes(value: number): string {
  const unit = unitOf(value, BINARY_UNITS) ?? unitOf(value, DECIMAL_UNITS);
  return unit ? `${value / unit[1]} ${unit[0]}` : `${number(value)} bytes`;
}

/** A ratio in a sentence: 0.8 → "80%". */
export function percent(ratio: number): string {
  return `${number(ratio * 100)}%`;
}

/** A count in a sentence: 10000 → "10k", 10000000 → "10M". */
export function count(value: number): string {
  if (value >= 1e6 && value % 1e6 === 0) return `${value / 1e6}M`;
  if (value >= 1e3 && value % 1e3 === 0) return `${value / 1e3}k`;
  return number(value);
}
