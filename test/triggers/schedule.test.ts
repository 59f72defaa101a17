import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import t, { type Test } from 'tap';
import { main } from '../../src/cli.js';
import { parseConfig } from '../../src/config/load.js';
import { Engine } from '../../src/engine/engine.js';
import { startSchedule } from '../../src/triggers/schedule.js';
import type { RunRecord } from '../../src/engine/journal.js';
import { buildApp } from '../../src/server.js';
import { waitFor } from '../fixtures/ports.js';
import { fillKeys, startRedis } from '../fixtures/redis.js';
import { writeConfigFile } from '../actions/backup-fixture.js';
import { buildContext, testConfig } from '../actions/context.js';

const PATTERN = 'celery-task-meta-*';

async function stateDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'upkeep-schedule-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

t.test('schedule entries are validated with the config', async (t) => {
  const result = parseConfig('schedule:\n  - { name: bad, cron: "61 * * * *", remediation: redis.bgsave, timezone: Mars/Base }\n', {});
  t.equal(result.ok, false);
  if (!result.ok) t.same(result.errors.map((error) => error.path).sort(), ['schedule[0].cron', 'schedule[0].timezone']);
  const good = parseConfig('schedule:\n  - { name: s, cron: "*/5 * * * * *", remediation: redis.bgsave, timezone: Asia/Tokyo }\n', {});
  t.equal(good.ok, true);
  if (good.ok) t.equal(good.config.schedule[0]?.allowRisk, 'safe');
});

t.test('a seconds-field entry runs through the engine with trigger schedule', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.destroy());
  const config = testConfig({
    state: { dir: await stateDir(t) },
    collectors: { disabled: ['disks', 'backups', 'logs', 'http', 'postgres', 'redis', 'docker'] },
    targets: { redis: [{ name: 'cache', url: redis.url }] },
    schedule: [
      { name: 'every-second-bgsave', cron: '* * * * * *', remediation: 'redis.bgsave', params: { target: 'cache' } },
      { name: 'tokyo-nightly', cron: '0 2 * * *', timezone: 'Asia/Tokyo', remediation: 'redis.bgsave', params: { target: 'cache' }, dryRun: true },
    ],
  });
  const context = buildContext({});
  const app = await buildApp({ config, log: context.log, collectors: [] });
  t.teardown(() => app.fastify.close());
  const record = await waitFor('a finished scheduled run', async () => {
    const finished = (await app.engine.list({ trigger: 'schedule' })).runs.find((run) => run.finishedAt !== undefined);
    if (!finished) throw new Error('none yet');
    return finished;
  }, 60_000, 100);
  t.equal(record.trigger, 'schedule');
  t.equal(record.source, 'schedule:every-second-bgsave');
  t.equal(record.remediation, 'redis.bgsave');
  t.equal(record.status, 'success', record.error ?? record.reason ?? '');
  t.match(record.verification?.detail, /LASTSAVE advanced/);
  const metrics = (await app.fastify.inject({ method: 'GET', url: '/metrics' })).body;
  const next = (job: string) => Number(new RegExp(`^upkeep_schedule_next_run_timestamp_seconds\\{job="${job}"\\} (\\S+)$`, 'm').exec(metrics)?.[1]);
  const now = Date.now() / 1000;
  t.ok(next('every-second-bgsave') > now - 2 && next('every-second-bgsave') < now + 3, 'the next tick of an every-second entry is about now');
  const tokyo = new Date(next('tokyo-nightly') * 1000);
  t.equal(tokyo.getUTCHours(), 17, '02:00 in Asia/Tokyo is 17:00 UTC');
  t.equal(tokyo.getUTCMinutes(), 0);
  // At info a tick logs two lines: the schedule's (with the job's name and the run) and the engine's end of the run.
  await waitFor('the run to be logged as finished', async () => {
    if (!context.logLines.some((line) => line.msg === 'run finished' && line.runId === record.id)) throw new Error('not yet');
  });
  const aboutTheRun = new Set(['scheduled run submitted', 'run finished', 'scheduled run finished']);
  const atInfo = context.logLines.filter((line) => line.runId === record.id && Number(line.level) >= 30 && aboutTheRun.has(String(line.msg)));
  t.same(atInfo.map((line) => [line.level, line.msg, line.job ?? null, line.trigger ?? null, line.status ?? null]), [
    [30, 'scheduled run submitted', 'every-second-bgsave', null, null],
    [30, 'run finished', null, 'schedule', 'success'],
  ], 'no third line saying the same at info');
});

t.test('a manual run during a scheduled one is refused by the lock', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.destroy());
  const client = redis.client();
  t.teardown(() => client.disconnect());
  await fillKeys(client, 'celery-task-meta-', 300_000);
  const targets = { redis: [{ name: 'cache', url: redis.url, keyPatterns: [PATTERN] }] };
  const config = testConfig({
    state: { dir: await stateDir(t) },
    collectors: { disabled: ['disks', 'backups', 'logs', 'http', 'postgres', 'redis', 'docker'] },
    targets,
    remediation: { windows: [{ name: 'always', cron: '* * * * *', durationMinutes: 60 }] },
    // Small batches make the scheduled cleanup of 300k keys take a while, so there is time to collide with it.
    schedule: [{ name: 'celery-cleanup', cron: '* * * * * *', remediation: 'redis.expire_keys', allowRisk: 'destructive', params: { target: 'cache', pattern: PATTERN, batchSize: 50 } }],
  });
  const app = await buildApp({ config, log: buildContext({}).log, collectors: [] });
  t.teardown(() => app.fastify.close());
  // The scheduled run holds the lock once its key exists on the target Redis.
  await waitFor('the scheduled run to take its lock', async () => {
    if ((await client.exists(`upkeep:lock:redis.expire_keys:${PATTERN}`)) !== 1) throw new Error('not locked yet');
  }, 60_000, 20);

  // `upkeep run` is another engine (another replica, as far as locks go), with its own journal.
  const cliConfig = await writeConfigFile({ state: { dir: await stateDir(t) }, targets });
  const out: string[] = [];
  const code = await main(['run', 'redis.expire_keys', '--param', 'target=cache', '--param', `pattern=${PATTERN}`, '--config', cliConfig], { out: (line) => out.push(line), err: () => undefined, env: {} });
  t.equal(code, 0, 'a skip is not an error');
  t.match(out.join('\n'), /status: skipped\nreason: locked: another run holds the lock on redis\.expire_keys redis:cache:redis\.expire_keys:celery-task-meta-\* \(run \S+ on \S+ \(pid \d+\)\)$/m, 'the reason names the holder');

  // The same engine refuses a manual run too.
  const manual: RunRecord = await app.engine.submit({ remediation: 'redis.expire_keys', params: { target: 'cache', pattern: PATTERN }, trigger: 'manual' }).done;
  t.equal(manual.status, 'skipped');
  t.equal(manual.skipCode, 'lock');

  const scheduled = await waitFor('the scheduled run to finish', async () => {
    const finished = (await app.engine.list({ trigger: 'schedule' })).runs.find((run) => run.status === 'success');
    if (!finished) throw new Error('still running');
    return finished;
  }, 300_000, 200);
  t.equal(scheduled.output?.unlinked, 300_000);
  t.equal(await client.dbsize(), 0);
});

t.test('startSchedule on its own: missed ticks are not backfilled, stop removes the metric', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.destroy());
  const context = buildContext({});
  const config = testConfig({
    state: { dir: await stateDir(t) },
    targets: { redis: [{ name: 'cache', url: redis.url }] },
    schedule: [{ name: 'tick', cron: '* * * * * *', remediation: 'redis.bgsave', params: { target: 'cache' }, dryRun: true }],
  });
  const registry = new Registry();
  const engine = await Engine.create({ config, log: context.log });
  t.teardown(() => engine.close());
  const schedule = startSchedule({ config, submitter: engine, registry, log: context.log });
  t.match(await registry.metrics(), /upkeep_schedule_next_run_timestamp_seconds\{job="tick"\} \d+/);
  await waitFor('a first tick', async () => { if ((await engine.list({ trigger: 'schedule' }, null, 1000)).runs.length === 0) throw new Error('none'); }, 30_000, 50);
  const before = (await engine.list({ trigger: 'schedule' }, null, 1000)).runs.length;
  // Block the event loop for 3.5 s: the ticks that fell in it are reported missed and not run later.
  const until = Date.now() + 3500;
  while (Date.now() < until) { /* busy */ }
  await waitFor('the missed ticks to be reported', async () => {
    if (!context.logLines.some((line) => String(line.msg).startsWith('a scheduled run was missed'))) throw new Error('not yet');
  }, 10_000, 50);
  const after = (await engine.list({ trigger: 'schedule' }, null, 1000)).runs.length;
  t.ok(after - before <= 2, `no backfill: ${after - before} runs were submitted after a 3.5 s stall`);
  t.ok((await engine.list({ trigger: 'schedule' }, null, 1000)).runs.every((run) => run.status === 'dry_run' || run.status === 'queued' || run.status === 'running'));
  await schedule.stop();
  t.notMatch(await registry.metrics(), /upkeep_schedule_next_run_timestamp_seconds/);
});

t.test('a tick that cannot start leaves the next-run time in the past, where UpkeepScheduleMissed sees it', async (t) => {
  const context = buildContext({});
  const config = testConfig({ schedule: [{ name: 'stuck', cron: '* * * * * *', remediation: 'redis.bgsave', params: { target: 'cache' } }] });
  const registry = new Registry();
  // The first run never finishes, so every later tick is an overlap and starts nothing.
  const submitted: string[] = [];
  const submitter = { claimTick: async () => ({ runId: 'r1' }), submit: () => { submitted.push('run'); return { runId: 'r1', done: new Promise<RunRecord>(() => undefined), journalled: Promise.resolve('queued' as const) }; } };
  const schedule = startSchedule({ config, submitter, registry, log: context.log });
  t.teardown(() => schedule.stop());
  const next = async () => Number(/^upkeep_schedule_next_run_timestamp_seconds\{job="stuck"\} (\S+)$/m.exec(await registry.metrics())?.[1]);
  t.ok(await next() > Date.now() / 1000 - 1, 'before the first tick the next run is ahead');
  await waitFor('the first tick', async () => { if (submitted.length === 0) throw new Error('none'); }, 10_000, 20);
  const due = await next();
  await waitFor('three overlapping ticks later', async () => { if (Date.now() / 1000 < due + 3) throw new Error('not yet'); }, 10_000, 100);
  t.equal(submitted.length, 1, 'the later ticks started nothing');
  t.equal(await next(), due, 'the next run stays where the first overlapping tick was due');
  t.ok(Date.now() / 1000 - due >= 3, 'and falls behind time()');
  const skipped = context.logLines.filter((line) => line.msg === "the entry's previous run is still going; this tick is skipped");
  t.same(skipped[0] && [skipped[0].level, skipped[0].job, skipped[0].nominal], [40, 'stuck', new Date(due * 1000).toISOString()], 'the first skipped tick is the one the metric shows');
});

t.test("entries speak the windows' dialect: nicknames and the nth weekday", async (t) => {
  const context = buildContext({});
  const entry = { remediation: 'redis.bgsave', params: { target: 'cache' }, timezone: 'UTC' };
  const config = testConfig({ schedule: [{ name: 'daily', cron: '@daily', ...entry }, { name: 'first-sunday', cron: '0 1 * * 0#1', ...entry }] });
  const registry = new Registry();
  const submitter = { claimTick: async () => ({ runId: 'r1' }), submit: (): never => { throw new Error('no tick is due in this test'); } };
  const schedule = startSchedule({ config, submitter, registry, log: context.log });
  t.teardown(() => schedule.stop());
  const metrics = await registry.metrics();
  const next = (job: string) => new Date(1000 * Number(new RegExp(`^upkeep_schedule_next_run_timestamp_seconds\\{job="${job}"\\} (\\S+)$`, 'm').exec(metrics)?.[1]));
  const daily = next('daily');
  t.same([daily.getUTCHours(), daily.getUTCMinutes()], [0, 0], '@daily is at midnight');
  t.ok(daily.getTime() > Date.now() && daily.getTime() <= Date.now() + 86_400_000, 'the next midnight');
  const sunday = next('first-sunday');
  t.same([sunday.getUTCDay(), sunday.getUTCHours(), sunday.getUTCMinutes()], [0, 1, 0], 'a Sunday, 01:00');
  t.ok(sunday.getUTCDate() <= 7, 'the first of its month');
  t.same(context.logLines.map((line) => [line.level, line.msg, line.jobs]), [[30, 'schedule started', ['daily', 'first-sunday']]]);
});
