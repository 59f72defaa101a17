import t from 'tap';
import { cronError } from '../../src/config/cron.js';
import { openWindow } from '../../src/engine/windows.js';
import { testConfig } from '../http/helpers.js';

t.test('cron expressions and maintenance windows', async (t) => {
  const at = (text: string) => new Date(text).getTime();
  // A one-minute window is open exactly in the minutes the expression matches.
  const cronMatches = (cron: string, epochMs: number, timezone?: string) =>
    openWindow([{ name: 'minute', cron, durationMinutes: 1, ...(timezone ? { timezone } : {}) }], epochMs) !== null;
  t.equal(cronMatches('0 2 * * *', at('2024-03-05T02:00:00Z'), 'UTC'), true);
  t.equal(cronMatches('0 2 * * *', at('2024-03-05T02:01:00Z'), 'UTC'), false);
  t.equal(cronMatches('*/15 1-3 * * mon-fri', at('2024-03-05T03:45:00Z'), 'UTC'), true, 'a Tuesday');
  t.equal(cronMatches('*/15 1-3 * * mon-fri', at('2024-03-09T03:45:00Z'), 'UTC'), false, 'a Saturday');
  t.equal(cronMatches('0 0 1 jan,jul 7', at('2024-01-07T00:00:00Z'), 'UTC'), true, 'day-of-month or day-of-week (7 is Sunday)');
  t.equal(cronMatches('0 0 1 jan,jul 7', at('2024-07-01T00:00:00Z'), 'UTC'), true);
  t.equal(cronMatches('0 0 1 jan,jul 7', at('2024-07-02T00:00:00Z'), 'UTC'), false);
  t.equal(cronMatches('30 9 * * *', at('2024-03-05T08:30:00Z'), 'Europe/Paris'), true, 'time zones');
  t.equal(cronMatches('5/20 * * * *', at('2024-03-05T08:45:00Z'), 'UTC'), true, 'a start with a step');
  const local = new Date(2024, 2, 5, 2, 0);
  t.equal(cronMatches('0 2 * * *', local.getTime()), true, 'local time without a zone');

  const nightly = [{ name: 'nightly', cron: '0 2 * * *', durationMinutes: 180, timezone: 'UTC' }];
  t.equal(openWindow(nightly, at('2024-03-05T04:59:59Z'))?.name, 'nightly');
  t.equal(openWindow(nightly, at('2024-03-05T05:00:00Z')), null);
  t.equal(openWindow(nightly, at('2024-03-05T01:59:00Z')), null);

  t.equal(cronError('0 2 * * *'), null);
  t.match(cronError('0 2 * *'), /must have 5 fields/);
  t.match(cronError('61 * * * *'), /minute: "61" is outside 0-59/);
  t.match(cronError('x * * * *'), /minute: "x" is not a number/);
  t.match(cronError('*/0 * * * *'), /bad step/);
  t.match(cronError('5-1 * * * *'), /outside/);
  t.throws(() => testConfig({ remediation: { windows: [{ name: 'w', cron: '0 25 * * *', durationMinutes: 5 }] } }), /hour: .*25.* is outside 0-23/);
});

t.test("windows speak the schedule's dialect: the nth weekday, nicknames, seconds", async (t) => {
  const at = (text: string) => new Date(text).getTime();
  const firstSunday = [{ name: 'first-sunday', cron: '0 1 * * 0#1', durationMinutes: 120, timezone: 'UTC' }];
  t.equal(openWindow(firstSunday, at('2024-03-03T02:30:00Z'))?.name, 'first-sunday', 'the first Sunday of March 2024 is the 3rd');
  t.equal(openWindow(firstSunday, at('2024-03-10T02:30:00Z')), null, 'the second Sunday is not');
  const daily = [{ name: 'daily', cron: '@daily', durationMinutes: 60, timezone: 'Asia/Tokyo' }];
  t.equal(openWindow(daily, at('2024-03-05T15:30:00Z'))?.name, 'daily', 'midnight in Tokyo is 15:00 UTC');
  t.equal(openWindow(daily, at('2024-03-05T16:00:00Z')), null);
  const seconds = [{ name: 'seconds', cron: '30 0 2 * * *', durationMinutes: 1, timezone: 'UTC' }];
  t.equal(openWindow(seconds, at('2024-03-05T02:00:10Z'))?.name, 'seconds', 'an opening within the minute opens it');
});
