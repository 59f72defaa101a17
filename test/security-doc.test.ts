import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import t, { type Test } from 'tap';
import { z } from 'zod';
import { configSchema } from '../src/config/schema.js';
import { runRecordSchema } from '../src/engine/journal.js';
import { buildApp, type App } from '../src/server.js';
import { startPostgres } from './fixtures/postgres.js';
import { startRedis } from './fixtures/redis.js';
import { capturedLogger, tempDir } from './http/helpers.js';

/** A block of docs/security.md marked `<!-- tested: NAME -->`: what the doc tells operators to run. */
async function docBlock(name: string): Promise<string> {
  const doc = await readFile(new URL('../docs/security.md', import.meta.url), 'utf8');
  const block = new RegExp(`<!-- tested: ${name} -->\\n\`\`\`[a-z]*\\n([\\s\\S]*?)\\n\`\`\``).exec(doc)?.[1];
  if (block === undefined) throw new Error(`docs/security.md has no block marked "tested: ${name}"`);
  return block;
}

async function startApp(t: Test, raw: Record<string, unknown>): Promise<App> {
  const app = await buildApp({ config: configSchema.parse(raw), log: capturedLogger('info').log });
  t.teardown(() => app.fastify.close());
  return app;
}

/** A manual run through the engine (locks included), waited for. */
async function run(app: App, remediation: string, params: Record<string, unknown>) {
  const reply = await app.fastify.inject({ method: 'POST', url: `/remediations/${remediation}?wait=true`, payload: { params } });
  return runRecordSchema.parse(JSON.parse(reply.body));
}

const statuses = z.object({ targets: z.array(z.object({ collector: z.string(), target: z.string(), up: z.boolean(), lastError: z.string().nullable() })) });

t.test('the Redis ACL of docs/security.md is exactly what the collector and every Redis remediation send', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.destroy());
  const words = (await docBlock('redis-acl')).trim().split(/\s+/);
  t.same(words.slice(0, 4), ['ACL', 'SETUSER', 'upkeep', 'on']);
  const admin = redis.client();
  t.teardown(() => admin.disconnect());
  await admin.call('ACL', ...words.slice(1).map((word) => word.replace('>change-me', '>acl-pw-0c4f')));
  const pattern = 'celery-task-meta-*';
  const data = redis.client();
  await data.select(1);
  const batch = data.pipeline();
  for (let index = 0; index < 1500; index += 1) {
    if (index < 500) batch.set(`celery-task-meta-${index}`, 'x', 'EX', 3600);
    else batch.set(`celery-task-meta-${index}`, 'x');
  }
  for (let index = 0; index < 10; index += 1) batch.set(`other:${index}`, 'x');
  await batch.exec();
  data.disconnect();

  // From here on, INFO commandstats counts every command any client runs (scripts' included).
  await admin.call('CONFIG', 'RESETSTAT');
  const root = await tempDir(t, 'upkeep-acl-');
  const app = await startApp(t, {
    state: { dir: join(root, 'state') },
    collectors: { disabled: ['postgres', 'docker', 'disks', 'backups', 'logs', 'http'] },
    targets: { redis: [{ name: 'cache', url: `redis://upkeep:acl-pw-0c4f@127.0.0.1:${redis.port}/1`, keyPatterns: [pattern] }] },
  });
  await app.fastify.inject({ url: '/metrics' });
  const metrics = (await app.fastify.inject({ url: '/metrics' })).body;
  t.match(metrics, /upkeep_redis_up\{target="cache"\} 1\n/);
  t.match(metrics, /upkeep_redis_pattern_keys\{target="cache",pattern="celery-task-meta-\*"\} 1500\n/);
  // Read through the ACL; not necessarily 0: on a loaded machine the setup's pipeline may be slow enough to be logged.
  t.match(metrics, /upkeep_redis_slowlog_length\{target="cache"\} \d+\n/);

  const bgsave = await run(app, 'redis.bgsave', { target: 'cache' });
  t.equal(bgsave.status, 'success', bgsave.error ?? '');
  const purge = await run(app, 'redis.memory_purge', { target: 'cache' });
  t.equal(purge.status, 'success', purge.error ?? '');
  t.match(purge.output, { purge: 'OK', activeDefrag: 'refused', activeDefragReason: /^NOPERM .*config\|set/ }, 'CONFIG SET is left out, as the doc says: refused, not "unsupported" by the build');
  const expire = await run(app, 'redis.expire_keys', { target: 'cache', pattern, mode: 'expire', expireSeconds: 600, when: 'no-ttl' });
  t.equal(expire.status, 'success', expire.error ?? '');
  const unlink = await run(app, 'redis.expire_keys', { target: 'cache', pattern, mode: 'unlink' });
  t.equal(unlink.status, 'success', unlink.error ?? '');
  // Ours: a slow log to reset (every command logged for a moment).
  await admin.config('SET', 'slowlog-log-slower-than', '0');
  await admin.echo('slow');
  await admin.config('SET', 'slowlog-log-slower-than', '10000');
  const slowlog = await run(app, 'redis.slowlog_reset', { target: 'cache' });
  t.equal(slowlog.status, 'success', slowlog.error ?? '');
  await app.fastify.close();

  const stats = z.string().parse(await admin.info('commandstats'));
  const ran = [...stats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)].filter(([, , calls]) => Number(calls) > 0).map(([, name = '']) => name)
    // Ours: CONFIG RESETSTAT, and the CONFIG SET and ECHO that filled the slow log (upkeep's own
    // CONFIG SET is refused, so it never counts as a call). HELLO 3 AUTH logs in, and needs no grant.
    .filter((name) => !['config|resetstat', 'config|set', 'echo', 'hello'].includes(name)).sort();
  const granted = words.filter((word) => word.startsWith('+')).map((word) => word.slice(1)).sort();
  t.same(ran, granted, 'the ACL grants exactly the commands upkeep ran');
  const refused = z.array(z.array(z.unknown())).parse(await admin.call('ACL', 'LOG'));
  t.same(refused.map((entry) => entry[entry.indexOf('object') + 1]), ['config|set'], 'the one refusal is the CONFIG SET the doc leaves out');
  t.same(await admin.call('ACL', 'DRYRUN', 'upkeep', 'SET', 'other:1', 'y'), 'This user has no permissions to access the \'other:1\' key', 'keys outside the patterns are out of reach');

  // A user with the collector's grants only: its remediations are refused at their lock, saying so.
  await admin.call('ACL', 'SETUSER', 'watcher', 'on', '>watch-pw-5d1e', '-@all', '+info', '+client|setname', '+select', '+bgsave');
  const watching = await startApp(t, {
    state: { dir: join(root, 'state-watcher') },
    collectors: { disabled: ['postgres', 'docker', 'disks', 'backups', 'logs', 'http'] },
    targets: { redis: [{ name: 'cache', url: `redis://watcher:watch-pw-5d1e@127.0.0.1:${redis.port}/1` }] },
  });
  const locked = await run(watching, 'redis.bgsave', { target: 'cache' });
  t.equal(locked.status, 'failure');
  t.equal(locked.error, 'the remediation\'s lock upkeep:lock:redis.bgsave: NOPERM this user has no permissions to run the \'set\' command; the ACL user needs +set +get +eval on ~upkeep:lock:* (docs/security.md)', 'the refusal names the lock key and the grant');
});

t.test('the PostgreSQL roles of docs/security.md: metrics, maintenance, retention and backups work with exactly those grants', async (t) => {
  const roles = ['upkeep_metrics', 'upkeep_maintenance', 'upkeep_retention', 'upkeep_backup', 'upkeep_sessions'];
  const server = await startPostgres({ passwordRoles: roles, settings: { autovacuum: 'off' } });
  t.teardown(() => server.destroy());
  await server.query('create role app_owner');
  await server.query('create database appdb owner app_owner');
  await server.query(`set role app_owner;
    create schema app;
    create table app.events (id bigint primary key, created_at timestamptz not null, payload text not null);
    create index events_created_at on app.events (created_at);
    create table app.events_archive (like app.events);
    insert into app.events select g, now() - (g % 200) * interval '1 day', md5(g::text) from generate_series(1, 20000) g;
    delete from app.events where id % 10 = 0;
    reset role;`, [], 'appdb');
  for (const block of ['postgres-metrics', 'postgres-maintenance', 'postgres-retention', 'postgres-backup', 'postgres-terminate']) await server.query(await docBlock(block), [], 'appdb');
  // The backup role of the doc less its CREATEDB, and the retention role less its UPDATE: what the doc says each is for.
  await server.query('create role upkeep_no_createdb login in role pg_read_all_data');
  await server.query(`create role upkeep_no_update login;
    grant usage on schema app to upkeep_no_update;
    grant select, delete on app.events to upkeep_no_update;
    grant insert on app.events_archive to upkeep_no_update;`, [], 'appdb');

  const url = (role: string) => `postgres://${role}:change-me@127.0.0.1:${server.port}/postgres`;
  const root = await tempDir(t, 'upkeep-roles-');
  const app = await startApp(t, {
    state: { dir: join(root, 'state') },
    collectors: { disabled: ['redis', 'docker', 'disks', 'backups', 'logs', 'http'] },
    remediation: {
      cooldownSeconds: 0,
      retention: [
        { name: 'archive', target: 'retention', database: 'appdb', table: 'app.events', timestampColumn: 'created_at', olderThan: '150 days', archiveTable: 'app.events_archive' },
        { name: 'delete', target: 'retention', database: 'appdb', table: 'app.events', timestampColumn: 'created_at', olderThan: '100 days' },
        { name: 'archive-no-update', target: 'no_update', database: 'appdb', table: 'app.events', timestampColumn: 'created_at', olderThan: '150 days', archiveTable: 'app.events_archive' },
      ],
    },
    targets: {
      postgres: [
        { name: 'admin', url: server.url('postgres'), databases: ['appdb'] },
        { name: 'metrics', url: url('upkeep_metrics'), databases: ['appdb'] },
        { name: 'maintenance', url: url('upkeep_maintenance') },
        { name: 'retention', url: url('upkeep_retention') },
        { name: 'backup', url: url('upkeep_backup') },
        { name: 'sessions', url: url('upkeep_sessions') },
        { name: 'no_update', url: `postgres://upkeep_no_update@127.0.0.1:${server.port}/postgres` },
        { name: 'no_createdb', url: `postgres://upkeep_no_createdb@127.0.0.1:${server.port}/postgres` },
      ],
      backups: [
        { name: 'appdb', dir: join(root, 'backups'), pattern: 'appdb_*.sql.gz', source: { target: 'backup', database: 'appdb' } },
        { name: 'nocreate', dir: join(root, 'backups-nocreate'), pattern: 'nocreate_*.sql.gz', source: { target: 'no_createdb', database: 'appdb' } },
      ],
    },
  });

  t.test('metrics: pg_monitor reads every series a superuser reads', async (t) => {
    const metrics = (await app.fastify.inject({ url: '/metrics' })).body;
    const series = (target: string) => metrics.split('\n').filter((line) => line.includes(`target="${target}"`))
      .map((line) => line.replace(/ [^ ]+$/, '').replace(`target="${target}"`, 'target=""')).sort();
    t.ok(series('admin').length > 10, 'the superuser reads the tables');
    t.same(series('metrics'), series('admin'));
    const ready = statuses.parse(JSON.parse((await app.fastify.inject({ url: '/readyz' })).body)).targets.find((status) => status.target === 'metrics');
    t.match(ready, { up: true, lastError: null });
  });

  t.test('maintenance: a member of the owner role vacuums, analyzes and reindexes; a role that is not fails the verification', async (t) => {
    const table = { database: 'appdb', table: 'app.events' };
    for (const [remediation, params] of [['postgres.vacuum', table], ['postgres.analyze', table], ['postgres.reindex', table]] as const) {
      const record = await run(app, remediation, { target: 'maintenance', ...params });
      t.equal(record.status, 'success', `${remediation}: ${record.error ?? ''}`);
    }
    await server.query('delete from app.events where id % 10 = 1', [], 'appdb');
    // The retention role reads and deletes rows, but does not own the table: PostgreSQL skips it.
    const refused = await run(app, 'postgres.vacuum', { target: 'retention', ...table });
    t.equal(refused.status, 'failure');
    t.match(refused.error, /^verification failed: "app"\."events": no sign the vacuum ran \(vacuum_count (\d+), was \1\); PostgreSQL warned: skipping "events" --- only table or database owner can vacuum it$/);
  });

  t.test('retention: without the UPDATE the doc grants, archiving fails saying what it is for', async (t) => {
    const refused = await run(app, 'postgres.retention', { policy: 'archive-no-update' });
    t.equal(refused.status, 'failure');
    t.equal(refused.error, 'permission denied for table events: archiving locks each batch with SELECT … FOR UPDATE, which needs UPDATE on at least one column of the table besides SELECT and DELETE (docs/security.md, "Retention")');
  });

  t.test('retention: SELECT, DELETE, UPDATE on the timestamp column and INSERT on the archive are enough', async (t) => {
    const archived = await run(app, 'postgres.retention', { policy: 'archive' });
    t.equal(archived.status, 'success', archived.error ?? '');
    const [archive] = await server.query<{ rows: string }>('select count(*) as rows from app.events_archive', [], 'appdb');
    t.ok(Number(archive?.rows) > 0);
    t.match(archived.output, { archived: Number(archive?.rows) });
    const deleted = await run(app, 'postgres.retention', { policy: 'delete' });
    t.equal(deleted.status, 'success', deleted.error ?? '');
    t.match(deleted.output, { deleted: Number, archived: 0 });
    t.ok(Number(deleted.output?.deleted) > 0);
  });

  t.test('ending idle sessions: pg_read_all_stats and pg_signal_backend end another role\'s, never a superuser\'s', async (t) => {
    const idle = async (user: string) => {
      const client = new pg.Client({ connectionString: server.url('appdb').replace('postgres@', `${user}@`) });
      client.on('error', () => undefined);
      await client.connect();
      t.teardown(() => client.end().catch(() => undefined));
      await client.query('begin');
      await client.query('select txid_current()');
      return z.tuple([z.object({ pid: z.number() })]).parse((await client.query('select pg_backend_pid() as pid')).rows)[0].pid;
    };
    await server.query('alter role app_owner login');
    const [owned, admin] = [await idle('app_owner'), await idle('postgres')];
    const ended = await run(app, 'postgres.terminate_idle', { target: 'sessions', idleSeconds: 0 });
    t.equal(ended.status, 'success', ended.error ?? '');
    t.match(ended.output, { terminated: [{ pid: owned }], leftAlone: [] });
    const left = await server.query<{ pid: number }>("select pid from pg_stat_activity where state = 'idle in transaction'");
    t.same(left.map((row) => row.pid), [admin], 'the superuser\'s session stays');
  });

  t.test('backups: pg_read_all_data and CREATEDB dump and verify tables another role owns', async (t) => {
    const dumped = await run(app, 'backup.pg_dump', { backup: 'appdb' });
    t.equal(dumped.status, 'success', dumped.error ?? '');
    const verified = await run(app, 'backup.verify', { backup: 'appdb', maxRowDifferenceRatio: 0 });
    t.equal(verified.status, 'success', verified.error ?? '');
    t.match(verified.output, { tables: 2, comparedWithSource: true, problems: [] });
  });

  t.test('backups: without the CREATEDB the doc grants, the dump works and the verify fails saying what it is for', async (t) => {
    const dumped = await run(app, 'backup.pg_dump', { backup: 'nocreate' });
    t.equal(dumped.status, 'success', dumped.error ?? '');
    const refused = await run(app, 'backup.verify', { backup: 'nocreate' });
    t.equal(refused.status, 'failure');
    t.equal(refused.error, 'permission denied to create database: backup.verify restores into a scratch database of its own, which needs CREATEDB on the role (docs/security.md, "Backups")');
  });
});
