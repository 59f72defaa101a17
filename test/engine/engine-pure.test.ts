import t from 'tap';
import { consumesAlert, idempotencyKey } from '../../src/engine/guards/idempotency.js';
import { riskGate } from '../../src/engine/guards/risk-window.js';
import { RunHistory } from '../../src/engine/history.js';
import { outcomeOf } from '../../src/engine/metrics.js';
import { nameCandidates, nameReadings, quoteIdent, reindexStatement, retentionSql, sqlName, vacuumStatement } from '../../src/systems/postgres/sql.js';
import { matchingRules, templateParams } from '../../src/triggers/rules.js';
import type { RunRecord } from '../../src/engine/journal.js';
import { cronError, parseCron } from '../../src/config/cron.js';
import { cronMatches, openWindow } from '../../src/engine/windows.js';
import { CLAIM_LIMIT, CLAIM_TTL_MS, GuardFile } from '../../src/engine/state/guard-file.js';
import { tempDir, testConfig } from '../http/helpers.js';

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

t.test('rules match every label and template params from labels', async (t) => {
  const rules = testConfig({ remediation: { rules: [
    { match: { alertname: 'A' }, remediation: 'x', params: { table: '{{labels.schema}}.{{ labels.table }}', n: 3, flag: true } },
    { match: { alertname: 'A', severity: 'critical' }, remediation: 'y' },
  ] } }).remediation.rules;
  t.same(matchingRules(rules, { alertname: 'A', severity: 'warning' }).map((match) => match.index), [0]);
  t.same(matchingRules(rules, { alertname: 'A', severity: 'critical' }).map((match) => match.index), [0, 1]);
  t.same(matchingRules(rules, { alertname: 'B' }), []);
  t.same(templateParams(rules[0]!.params, { schema: 'public', table: 'x; DROP TABLE y' }), { table: 'public.x; DROP TABLE y', n: 3, flag: true }, 'label text is copied, never interpreted');
  t.throws(() => templateParams({ table: '{{labels.table}}' }, {}), /param "table" needs label "table"/);
  t.same(templateParams({ text: '{{labels.a}}{{labels.a}}' }, { a: '{{labels.b}}', b: 'no' }), { text: '{{labels.b}}{{labels.b}}' }, 'substituted text is not templated again');
});

t.test('SQL text: identifiers always quoted', async (t) => {
  t.equal(quoteIdent('plain'), '"plain"');
  t.equal(quoteIdent('x"; DROP TABLE y; --'), '"x""; DROP TABLE y; --"');
  t.throws(() => quoteIdent('a\u0000b'), /NUL/);
  t.same(nameCandidates('a.b.c'), [{ schema: 'a', name: 'b.c' }, { schema: 'a.b', name: 'c' }]);
  t.same(nameCandidates('orders'), [{ schema: 'public', name: 'orders' }]);
  t.same(nameCandidates('.x'), [{ schema: 'public', name: '.x' }]);
  t.same(nameCandidates('x.'), [{ schema: 'public', name: 'x.' }]);
  // The SQL reading of a name: how PostgreSQL itself would read it in a statement.
  t.same(sqlName('PUBLIC.Orders'), { schema: 'public', name: 'orders' });
  t.same(sqlName('"orders"'), { schema: 'public', name: 'orders' });
  t.same(sqlName('"Odd ""Name"".x"'), { schema: 'public', name: 'Odd "Name".x' });
  t.same(sqlName('"public"."a.b"'), { schema: 'public', name: 'a.b' });
  t.same(sqlName('_x$1.y'), { schema: '_x$1', name: 'y' });
  for (const text of ['a.b.c', '"open', 'a..b', 'a.', '.a', '1abc', 'a b', 'x; DROP TABLE y', '""']) t.equal(sqlName(text), null, `not SQL: ${text}`);
  t.same(nameReadings('PUBLIC.orders'), [{ schema: 'PUBLIC', name: 'orders', literal: true }, { schema: 'public', name: 'orders', literal: false }]);
  t.same(nameReadings('public.orders'), [{ schema: 'public', name: 'orders', literal: true }], 'the SQL reading is left out when it is the literal one');
  t.same(nameReadings('"public"."orders"'), [{ schema: '"public"', name: '"orders"', literal: true }, { schema: 'public', name: 'orders', literal: false }]);
  t.equal(vacuumStatement({ schema: 's', name: 't' }, { full: false, analyze: false }), 'VACUUM "s"."t"');
  t.equal(reindexStatement({ kind: 'index', name: { schema: 's', name: 'i"x' } }, false), 'REINDEX INDEX "s"."i""x"');
  t.equal(reindexStatement({ kind: 'table', name: { schema: 's', name: 't' } }, true), 'REINDEX TABLE CONCURRENTLY "s"."t"');
  const sql = retentionSql({ table: { schema: 's', name: 't' }, archive: null, columns: ['a'], timestampColumn: 'ts', cutoff: new Date('2024-01-01T00:00:00Z'), batchSize: 10, where: 'deleted_at IS NOT NULL' });
  t.equal(sql.countOlder, `SELECT count(*)::bigint AS rows FROM "s"."t" WHERE "ts" < '2024-01-01T00:00:00.000Z'::timestamptz AND (deleted_at IS NOT NULL)`);
  t.equal(sql.insertArchive, '');
});

const record = (changes: Partial<RunRecord>): RunRecord => ({
  id: 'r', remediation: 'postgres.vacuum', trigger: 'alert', status: 'success', params: {}, queuedAt: '2024-01-01T00:00:00Z', ...changes,
});

t.test('guards: idempotency, cooldown, circuit breaker, risk gate', async (t) => {
  const alert = { fingerprint: 'f', startsAt: 's', alertname: 'A', labels: {} };
  t.equal(consumesAlert(record({ alert })), true);
  t.equal(consumesAlert(record({ alert, status: 'duplicate' })), false);
  t.equal(consumesAlert(record({ alert, status: 'skipped', skipCode: 'window' })), false, 'a window refusal can run on re-delivery');
  t.equal(consumesAlert(record({ alert, status: 'skipped', skipCode: 'lock' })), true, 'another replica handled it');
  t.equal(consumesAlert(record({})), false);

  const settings = testConfig({ remediation: { cooldownSeconds: 60, circuitBreaker: { failures: 2, windowSeconds: 100 } } }).remediation;
  const t0 = Date.parse('2024-01-01T00:00:00Z');
  const guards = await GuardFile.open({ dir: await tempDir(t), now: () => t0, claimTtlMs: CLAIM_TTL_MS, claimLimit: CLAIM_LIMIT, cooldownMs: 60_000, failureWindowMs: 100_000 });
  t.teardown(() => guards.close());
  const history = new RunHistory(settings, guards);
  await history.replay([
    record({ id: 'a', alert, status: 'failure', lockKey: 'k', finishedAt: '2024-01-01T00:00:10Z' }),
    record({ id: 'b', status: 'failure', finishedAt: '2024-01-01T00:00:20Z' }),
    record({ id: 'c', status: 'running' }),
    record({ id: 'd', status: 'success', dryRun: true, lockKey: 'dry', finishedAt: '2024-01-01T00:00:30Z', remediation: 'other' }),
    record({ id: 'e', status: 'failure', finishedAt: 'garbage' }),
  ]);
  t.equal(await history.claimAlert(idempotencyKey(alert, 'postgres.vacuum'), 'new', t0), 'a', 'replayed alerts stay claimed');
  t.equal(await history.claimAlert(idempotencyKey(alert, 'postgres.analyze'), 'new', t0), undefined, 'per remediation');
  await history.releaseAlert(idempotencyKey(alert, 'postgres.analyze'), 'someone-else');
  t.equal(await history.claimAlert(idempotencyKey(alert, 'postgres.analyze'), 'x', t0), 'new', 'only the owner releases');
  t.equal(await history.cooldownRemaining('k', t0 + 30_000), 40);
  t.equal(await history.cooldownRemaining('k', t0 + 80_000), 0);
  t.equal(await history.cooldownRemaining('dry', t0 + 31_000), 0, 'dry runs do not start a cooldown');
  t.equal(await history.circuitOpen('postgres.vacuum', t0 + 50_000), true);
  t.equal(await history.circuitOpen('postgres.vacuum', t0 + 115_000), false, 'failures age out of the window');
  await history.recordFinish(record({ status: 'failure', finishedAt: '2024-01-01T00:02:00Z' }));
  await history.recordFinish(record({ status: 'failure', finishedAt: '2024-01-01T00:02:01Z' }));
  t.equal(await history.circuitOpen('postgres.vacuum', t0 + 125_000), true);
  await history.recordFinish(record({ status: 'success', finishedAt: '2024-01-01T00:02:02Z' }));
  t.equal(await history.circuitOpen('postgres.vacuum', t0 + 125_000), false, 'a success closes the circuit');
  for (const second of [3, 4, 5, 6]) await history.recordFinish(record({ status: 'rejected', lockKey: 'k2', finishedAt: `2024-01-01T00:02:0${second}Z` }));
  t.equal(await history.circuitOpen('postgres.vacuum', t0 + 127_000), false, 'rejections are not failures: they never open the circuit');
  t.equal(await history.cooldownRemaining('k2', t0 + 127_000), 0, 'nor start a cooldown: nothing executed');
  t.equal(consumesAlert(record({ alert, status: 'rejected' })), true, 'a rejected alert is handled: its re-deliveries are duplicates');

  const window = { name: 'w', cron: '* * * * *', durationMinutes: 1 };
  t.equal(riskGate('safe', undefined, null), null);
  t.match(riskGate('destructive', 'disruptive', window), { code: 'risk' });
  t.match(riskGate('disruptive', 'destructive', null), { code: 'window' });
  t.equal(riskGate('disruptive', 'disruptive', window), null);
});

t.test('outcomes counted in upkeep_remediation_runs_total', async (t) => {
  t.same(['success', 'dry_run', 'failure', 'interrupted', 'skipped', 'duplicate', 'cancelled', 'rejected', 'queued', 'running'].map((status) => outcomeOf(status as RunRecord['status'])),
    ['success', 'dry_run', 'failure', 'failure', 'skipped', 'skipped', 'skipped', 'rejected', null, null]);
});
