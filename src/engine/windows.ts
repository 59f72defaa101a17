import { cronOccurrences } from '../config/cron.js';

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

/** The window open at `nowMs` (its latest opening, in the current minute or before, is under durationMinutes ago), or null. */
export function openWindow(windows: readonly WindowSpec[], nowMs: number): WindowSpec | null {
  const minuteStart = Math.floor(nowMs / 60_000) * 60_000;
  for (const window of windows) {
    // The latest opening strictly before the next minute: one in the current minute counts.
    const [opened] = cronOccurrences(window.cron, window.timezone).previousRuns(1, new Date(minuteStart + 60_000));
    if (opened && minuteStart - opened.getTime() < window.durationMinutes * 60_000) return window;
  }
  return null;
}
