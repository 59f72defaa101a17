import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import t from 'tap';
import type { AnyAction } from '../../src/actions/contract.js';
import { ACTIONS } from '../../src/actions/registry.js';
import { Engine } from '../../src/engine/engine.js';
import type { RunRecord } from '../../src/engine/journal.js';
import { DOCKER_SOCKET, ensureDocker, ensureTestImage, runContainer } from '../fixtures/docker.js';
import { bufferLogger } from '../fixtures/log.js';
import { startRedis } from '../fixtures/redis.js';
import { tempDir, testConfig } from '../http/helpers.js';
import { makeDatabase } from './backup-fixture.js';
import { startTestPostgres, tableWithDeadTuples } from './postgres-fixture.js';

const DAY_SECONDS = 86_400;

/**
 * The plan is what runs: for every remediation, a dry run and then a real run on the same state
 * (the engine's clock held still, so time-dependent plans such as file ages, backup names and
 * retention cutoffs cannot drift) journal equal plans, and run() is handed exactly the planned
 * payload.
 */
t.test('for every remediation, the dry run plans what the real run then executes', async (t) => {
  const root = await tempDir(t, 'upkeep-plan-');
  const postgres = await startTestPostgres(t);
  await makeDatabase(postgres, 'refnet', 1);
  await tableWithDeadTuples(postgres, 'refnet', 'orders');
  await postgres.query('create index orders_payload on orders (payload)', [], 'refnet');
  await postgres.query('create table logs (id int primary key, created_at timestamptz not null)', [], 'refnet');
  await postgres.query("insert into logs select g, now() - interval '40 days' - g * interval '1 minute' from generate_series(1, 50) g", [], 'refnet');
  await postgres.query("insert into logs select g, now() - interval '1 day' from generate_series(51, 60) g", [], 'refnet');
  // For postgres.terminate_idle: a session of an ordinary role, left idle in a transaction.
  await postgres.query('create role report_job login');
  const idler = new pg.Client({ connectionString: postgres.url('refnet').replace('postgres@', 'report_job@') });
  idler.on('error', () => undefined);
  await idler.connect();
  t.teardown(() => idler.end().catch(() => undefined));
  await idler.query('begin');
  await idler.query('select txid_current()');
  const redis = await startRedis();
  t.teardown(() => redis.destroy());
  const client = redis.client();
  t.teardown(() => client.disconnect());
  await client.config('SET', 'slowlog-log-slower-than', '0');
  for (let i = 0; i < 50; i++) await client.set(`session:${i}`, 'x');
  await client.config('SET', 'slowlog-log-slower-than', '10000000');
  const docker = await ensureDocker();
  await ensureTestImage(docker);
  const label = `upkeep.plan.test=${process.pid}-${Date.now()}`;
  const [labelKey, labelValue] = label.split('=') as [string, string];
  const stopped = await runContainer(docker, { name: `upkeep-plan-${process.pid}-${Date.now()}`, cmd: ['true'], labels: { [labelKey]: labelValue } });
  t.teardown(() => stopped.remove({ force: true }).catch(() => undefined));
  await stopped.wait();
  const [logs, scratch] = [join(root, 'logs'), join(root, 'tmp')];
  await mkdir(logs);
  await mkdir(scratch);
  const aged = async (path: string, days: number) => {
    await writeFile(path, 'line\n'.repeat(100));
    await utimes(path, Date.now() / 1000 - days * DAY_SECONDS, Date.now() / 1000 - days * DAY_SECONDS);
  };
  await aged(join(logs, 'app_1.log'), 2);
  await aged(join(logs, 'app_2.log.gz'), 40);
  await aged(join(scratch, 'upload.tmp'), 2);

  const config = testConfig({
    state: { dir: join(root, 'state') },
    targets: {
      postgres: [{ name: 'main', url: postgres.url('postgres') }],
      redis: [{ name: 'cache', url: redis.url, keyPatterns: ['session:*'] }],
      docker: [{ name: 'local', socketPath: DOCKER_SOCKET }],
      backups: [{ name: 'refnet', dir: join(root, 'backups'), pattern: 'refnet_*.sql.gz', source: { target: 'main', database: 'refnet' } }],
      logs: [{ name: 'app', dir: logs, pattern: 'app_*.log' }],
      files: [{ name: 'tmp', dir: scratch, pattern: '*.tmp' }],
    },
    remediation: { retention: [{ name: 'logs', target: 'main', database: 'refnet', table: 'public.logs', timestampColumn: 'created_at', olderThan: '30 days' }] },
  });

  // Each action as the registry has it, with run() recording what it was handed.
  const received = new Map<string, unknown>();
  const recorded = ACTIONS.map((action): AnyAction => ({
    ...action,
    run: (params, payload, context) => {
      received.set(action.name, payload);
      return action.run(params, payload, context);
    },
  }));
  const frozen = Date.now();
  const logger = bufferLogger();
  const engine = await Engine.create({ config, log: logger.log, actions: recorded, now: () => frozen });
  t.teardown(() => engine.close());

  const runs: Array<[string, Record<string, unknown>]> = [
    // First: the session it ends holds the vacuum horizon, which the freezes below need to advance.
    ['postgres.terminate_idle', { target: 'main', idleSeconds: 0 }],
    ['postgres.vacuum', { target: 'main', database: 'refnet', table: 'orders', minDeadTuples: 100 }],
    ['postgres.vacuum', { target: 'main', database: 'refnet', table: 'orders', freeze: true }],
    // Every table by age(relfrozenxid), oldest first: the order must not shift between the dry and the real run.
    ['postgres.vacuum', { target: 'main', database: 'refnet', freeze: true }],
    ['postgres.analyze', { target: 'main', database: 'refnet', table: 'orders' }],
    ['postgres.reindex', { target: 'main', database: 'refnet', table: 'orders' }],
    ['postgres.retention', { policy: 'logs' }],
    ['redis.bgsave', { target: 'cache' }],
    ['redis.memory_purge', { target: 'cache', activeDefrag: false }],
    ['redis.expire_keys', { target: 'cache', pattern: 'session:*' }],
    ['redis.slowlog_reset', { target: 'cache' }],
    ['docker.prune', { target: 'local', label, images: false, networks: false, buildCache: false }],
    ['logs.rotate', { name: 'app' }],
    ['files.cleanup', { name: 'tmp' }],
    ['backup.pg_dump', { backup: 'refnet' }],
    ['backup.verify', { backup: 'refnet' }],
  ];
  t.same([...new Set(runs.map(([name]) => name))].sort(), ACTIONS.map((action) => action.name).sort(), 'every remediation is here');

  const journalled = async (id: string): Promise<RunRecord> => {
    const record = await engine.get(id);
    if (!record) throw new Error(`run ${id} is not in the journal`);
    return record;
  };
  for (const [remediation, params] of runs) {
    t.test(`${remediation} ${JSON.stringify(params)}`, async (t) => {
      received.delete(remediation);
      const dry = await engine.submit({ remediation, params, trigger: 'manual', dryRun: true }).done;
      t.equal(dry.status, 'dry_run', dry.error ?? dry.reason ?? 'dry run');
      t.equal(received.has(remediation), false, 'a dry run runs nothing');
      const real = await engine.submit({ remediation, params, trigger: 'manual' }).done;
      t.equal(real.status, 'success', real.error ?? real.reason ?? 'success');
      const [dryLine, realLine] = [await journalled(dry.id), await journalled(real.id)];
      t.ok(dryLine.plan && dryLine.plan.length > 0, 'the dry run journalled its plan');
      t.same(realLine.plan, dryLine.plan, 'the journalled plans are equal');
      t.same(realLine.payload, dryLine.payload, 'and so are their payloads');
      t.same(JSON.parse(JSON.stringify(received.get(remediation))), realLine.payload, 'run() was handed the planned payload');
    });
  }
});
