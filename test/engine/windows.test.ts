import t from 'tap';
import { cronError, parseCron } from '../../src/config/cron.js';
import { cronMatches, openWindow } from '../../src/engine/windows.js';
import { testConfig } from '../http/helpers.js';

t.test('cron expressions and maintenance windows', async (t) => {
  const at = (text: string) => new Date(text).getTime();
  t.equal(cronMatches(parseCron('0 2 * * *'), at('2024-03-05T02:00:00Z'), 'UTC'), true);
  t.equal(cronMatches(parseCron('0 2 * * *'), at('2024-03-05T02:01:00Z'), 'UTC'), false);
  t.equal(cronMatches(parseCron('*/15 1-3 * * mon-fri'), at('2024-03-05T03:45:00Z'), 'UTC'), true, 'a Tuesday');
  t.equal(cronMatches(parseCron('*/15 1-3 * * mon-fri'), at('2024-03-09T03:45:00Z'), 'UTC'), false, 'a Saturday');
  t.equal(cronMatches(parseCron('0 0 1 jan,jul 7'), at('2024-01-07T00:00:00Z'), 'UTC'), true, 'day-of-month or day-of-week (7 is Sunday)');
  t.equal(cronMatches(parseCron('0 0 1 jan,jul 7'), at('2024-07-01T00:00:00Z'), 'UTC'), true);
  t.equal(cronMatches(parseCron('0 0 1 jan,jul 7'), at('2024-07-02T00:00:00Z'), 'UTC'), false);
  t.equal(cronMatches(parseCron('30 9 * * *'), at('2024-03-05T08:30:00Z'), 'Europe/Paris'), true, 'time zones');
  t.equal(cronMatches(parseCron('5/20 * * * *'), at('2024-03-05T08:45:00Z'), 'UTC'), true, 'a start with a step');
  const local = new Date(2024, 2, 5, 2, 0);
  t.equal(cronMatches(parseCron('0 2 * * *'), local.getTime()), true, 'local time without a zone');

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
