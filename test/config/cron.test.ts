import t from 'tap';
import { cronError, cronOccurrences } from '../../src/config/cron.js';
import { parseConfig } from '../../src/config/load.js';

t.test('the dialect computes next and previous occurrences', async (t) => {
  const from = new Date('2024-03-05T08:44:30Z');
  const iso = (dates: Date[]) => dates.map((date) => date.toISOString());
  t.same(iso(cronOccurrences('0 1 * * 0#1', 'UTC').nextRuns(2, from)), ['2024-04-07T01:00:00.000Z', '2024-05-05T01:00:00.000Z'], 'the first Sunday of each month');
  t.same(iso(cronOccurrences('0 1 * * sun#1', 'UTC').previousRuns(1, from)), ['2024-03-03T01:00:00.000Z'], 'by name, backwards');
  t.same(iso(cronOccurrences('@daily', 'Asia/Tokyo').nextRuns(1, from)), ['2024-03-05T15:00:00.000Z']);
  t.same(iso(cronOccurrences('5/20 * * * *', 'UTC').nextRuns(3, from)), ['2024-03-05T08:45:00.000Z', '2024-03-05T09:05:00.000Z', '2024-03-05T09:25:00.000Z'], 'a start with a step is 5, 25, 45');
  t.same(iso(cronOccurrences('*/2 * * * * *', 'UTC').nextRuns(2, from)), ['2024-03-05T08:44:32.000Z', '2024-03-05T08:44:34.000Z'], 'seconds first');
  t.same(iso(cronOccurrences('0 0 * * 5L', 'UTC').nextRuns(1, from)), ['2024-03-29T00:00:00.000Z'], 'the last Friday');
  t.same(iso(cronOccurrences('0 0 13 * fri', 'UTC').nextRuns(2, from)), ['2024-03-08T00:00:00.000Z', '2024-03-13T00:00:00.000Z'], 'either day field matching is enough');
});

t.test('a bad expression is named by its field', async (t) => {
  for (const good of ['0 1 * * 0#1', '@daily', '@weekly', '0 0 L * *', '*/5 * * * * *', '0 0 * * 7', '0 0 1 jan,jul mon-fri']) t.equal(cronError(good), null, good);
  t.equal(cronError('* * * * * * 2030'), 'must have 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first, not 7');
  t.equal(cronError('0'), 'must have 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first, not 1');
  t.equal(cronError('61 * * * * *'), 'second: "61" is outside 0-59');
  t.equal(cronError('0 0 32 * *'), 'day-of-month: "32" is outside 1-31');
  t.equal(cronError('0 0 * 13 *'), 'month: "13" is outside 1-12');
  t.equal(cronError('0 0 * * 8'), 'day-of-week: "8" is outside 0-7');
  t.equal(cronError('5-1 * * * *'), 'minute: "5-1" is outside 0-59');
  t.equal(cronError('*/0 * * * *'), 'minute: bad step in "*/0"');
  t.equal(cronError('0 0 * * mon#9'), 'day-of-week: "mon#9": the nth weekday must be 1-5, or L for the last');
  t.equal(cronError('0 0 * feb mon?x'), 'day-of-week: "mon?x" is not a number, a name, a range, a list or a step');
  t.equal(cronError('@reboot'), '@reboot is not supported in this environment. This is an event-based trigger that requires system startup detection.');
});

t.test('windows and schedule entries are checked with the same dialect and time zones', async (t) => {
  const result = parseConfig([
    'remediation:',
    '  windows:',
    '    - { name: monthly, cron: "0 1 * * 0#1", durationMinutes: 300, timezone: Asia/Tokyo }',
    '    - { name: bad, cron: "0 25 * * *", durationMinutes: 5, timezone: Mars/Base }',
    'schedule:',
    '  - { name: daily, cron: "@daily", remediation: redis.bgsave }',
    '  - { name: bad, cron: "0 0 * * mon#9", remediation: redis.bgsave, timezone: Mars/Base }',
  ].join('\n'), {});
  t.equal(result.ok, false);
  if (!result.ok) {
    t.same(result.errors.map((error) => [error.path, error.message]), [
      ['remediation.windows[1].cron', 'hour: "25" is outside 0-23'],
      ['remediation.windows[1].timezone', 'must be an IANA time zone such as "Asia/Tokyo" or "UTC"'],
      ['schedule[1].cron', 'day-of-week: "mon#9": the nth weekday must be 1-5, or L for the last'],
      ['schedule[1].timezone', 'must be an IANA time zone such as "Asia/Tokyo" or "UTC"'],
    ]);
  }
});
