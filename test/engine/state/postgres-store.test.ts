import { writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import t from 'tap';
import { stringify } from 'yaml';
import { main } from '../../../src/cli.js';
import { parseConfig } from '../../../src/config/load.js';
import { openStateStore } from '../../../src/engine/state/open.js';
import { PostgresStore, type PostgresStoreOptions } from '../../../src/engine/state/postgres-store.js';
import { storableJson, storableText } from '../../../src/engine/state/postgres-db.js';
import { bufferLogger } from '../../fixtures/log.js';
import { freePort, waitFor } from '../../fixtures/ports.js';
import { startPostgres } from '../../fixtures/postgres.js';
import { tempDir } from '../../http/helpers.js';
import { clock, finished, queued, T0 } from './journal-fixture.js';

const PASSWORD = 'st8-5ecret-b0a7';
const server = await startPostgres({ passwordRoles: ['upkeep_state'] });
t.teardown(() => server.destroy());
// A role that owns its schema and may create nothing else, as docs/replicas.md sets it up.
await server.query(`create role upkeep_state login password '${PASSWORD}'`);
await server.query('create schema owned authorization upkeep_state');
const HOUR = 3_600_000;

let schemas = 0;
function options(changes: Partial<PostgresStoreOptions> = {}): PostgresStoreOptions {
  schemas += 1;
  return {
    url: server.url(), schema: `store_${schemas}`, timeoutMs: 10_000, retentionMs: 90 * 24 * HOUR, cooldownMs: HOUR, failureWindowMs: HOUR,
    log: bufferLogger().log, ...changes,
  };
}

async function open(t: { teardown(fn: () => unknown): void }, settings: PostgresStoreOptions): Promise<PostgresStore> {
  const store = await PostgresStore.open(settings);
  t.teardown(() => store.close());
  return store;
}

t.test('three replicas starting at once: one migrates under the advisory lock, the others find it done', async (t) => {
  const base = options();
  const logs = [bufferLogger(), bufferLogger(), bufferLogger()];
  const stores = await Promise.all(logs.map((log) => PostgresStore.open({ ...base, log: log.log })));
  t.teardown(() => Promise.all(stores.map((store) => store.close())));
  t.same(await server.query(`select version from ${base.schema}.schema_version order by version`), [{ version: 1 }, { version: 2 }, { version: 3 }, { version: 4 }], 'each version, once');
  const migrated = logs.map((log) => log.lines());
  t.equal(migrated.filter((lines) => lines.length > 0).length, 1, 'one replica migrated');
  t.match(migrated.flat(), [{ level: 30, schema: base.schema, from: 0, to: 4, msg: 'state.postgres: schema migrated' }]);
  t.equal(migrated.flat().length, 1, 'and nothing else was logged');
  const tables = await server.query<{ tablename: string }>('select tablename from pg_tables where schemaname = $1 order by tablename', [base.schema]);
  t.same(tables.map((row) => row.tablename), ['alert_claims', 'executions', 'failures', 'leases', 'members', 'runs', 'schema_version', 'success_records', 'successes', 'tick_claims']);
  const again = bufferLogger();
  await (await PostgresStore.open({ ...base, log: again.log })).close();
  t.equal(again.text(), '', 'a restart finds the schema current and says nothing');
});

t.test('a schema migrated by a newer upkeep is refused', async (t) => {
  const settings = options();
  await (await PostgresStore.open(settings)).close();
  await server.query(`insert into ${settings.schema}.schema_version values (99)`);
  await t.rejects(PostgresStore.open(settings), new Error(`state.postgres: migrating the schema: the schema "${settings.schema}" is at version 99, newer than this upkeep knows (4): upgrade upkeep, or use another schema`));
});

t.test('a role that only owns its schema, with its password from a file: the config opens the store; a wrong password names the store, never the password', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'state-password'), `${PASSWORD}\n`);
  const yaml = (password: string) => stringify({
    state: { postgres: { url: `postgres://upkeep_state:${password}@127.0.0.1:${server.port}/postgres`, schema: 'owned', timeoutSeconds: 5 } },
  });
  const parsed = parseConfig(yaml(`\${file:${join(dir, 'state-password')}}`), {});
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  t.same(parsed.config.state.postgres, { url: `postgres://upkeep_state:${PASSWORD}@127.0.0.1:${server.port}/postgres`, schema: 'owned', timeoutSeconds: 5, leaseSeconds: 30, memberHeartbeatSeconds: 2, memberLeaseSeconds: 10 });
  const captured = bufferLogger();
  const store = await openStateStore(parsed.config, captured.log, Date.now);
  t.teardown(() => store.close());
  t.ok(store instanceof PostgresStore);
  const run = finished(queued(Date.now()), 'success', Date.now());
  await store.append(run).durable;
  t.same(await store.get(run.id), run);
  t.match(captured.lines(), [{ schema: 'owned', from: 0, msg: 'state.postgres: schema migrated' }]);

  const wrong = parseConfig(yaml('not-the-password'), {});
  if (!wrong.ok) throw new Error(JSON.stringify(wrong.errors));
  const failed = await openStateStore(wrong.config, captured.log, Date.now).then(() => null, (err: unknown) => err);
  t.match(failed, { name: 'StateStoreError', code: '28P01', message: 'state.postgres: migrating the schema: password authentication failed for user "upkeep_state"' });
  const closedPort = await freePort();
  const refused = await PostgresStore.open(options({ url: `postgres://upkeep_state:${PASSWORD}@127.0.0.1:${closedPort}/postgres` })).then(() => null, (err: unknown) => err);
  t.match(refused, { code: 'ECONNREFUSED', message: `state.postgres: migrating the schema: connect ECONNREFUSED 127.0.0.1:${closedPort}` });
  t.notMatch(String((refused as Error).stack), PASSWORD, 'nor in the stack');
  t.notMatch(captured.text(), PASSWORD);
});

t.test('every statement has the timeout: a claim stuck behind a lock fails, naming the store', async (t) => {
  const settings = options({ timeoutMs: 300 });
  const store = await open(t, settings);
  const holder = new pg.Client({ connectionString: server.url() });
  await holder.connect();
  t.teardown(() => holder.end());
  await holder.query(`begin; lock table ${settings.schema}.alert_claims in access exclusive mode`);
  await t.rejects(store.guards.claimAlert('k', 'run-1', T0), { name: 'StateStoreError', code: '57014', message: 'state.postgres: claiming an alert: canceling statement due to statement timeout' });
  await holder.query('rollback');
  t.equal(await store.guards.claimAlert('k', 'run-1', T0), undefined, 'and works again once the lock is gone');
});

t.test('unfinished runs: another host\'s are left to their owner; two replicas on this host mark each dead run once', async (t) => {
  const settings = options();
  const [a, b] = await Promise.all([open(t, settings), open(t, settings)]);
  const elsewhere = { ...queued(T0, { host: 'another-pod', pid: 1 }), status: 'running' as const };
  const dead = Array.from({ length: 10 }, (_, n) => ({ ...queued(T0 + n + 1, { host: hostname(), pid: 999_999_999 }), status: 'running' as const }));
  for (const record of [elsewhere, ...dead]) await a.append(record).durable;
  const [byA, byB] = await Promise.all([a.recoverInterrupted(new Date(T0 + HOUR)), b.recoverInterrupted(new Date(T0 + HOUR))]);
  t.same([...byA, ...byB].map((run) => run.id).sort(), dead.map((run) => run.id).sort(), 'each dead run once, by one replica or the other');
  t.equal((await b.get(elsewhere.id))?.status, 'running', 'a run of another host waits for its lease (not built yet)');
});

t.test('a run a peer journalled interrupted keeps that record: its stalled owner\'s later writes are dropped, its outcome attached as late', async (t) => {
  const settings = options();
  const [owner, peer] = await Promise.all([open(t, settings), open(t, settings)]);
  const running = { ...queued(T0), status: 'running' as const, startedAt: new Date(T0).toISOString() };
  t.equal(await owner.append(queued(T0, { id: running.id })).durable, 'stored');
  t.equal(await owner.append(running).durable, 'stored');
  // What a peer does once the owner's lease expired (PostgresLeases.interruptExpired), here at once.
  const interrupted = { ...running, status: 'interrupted' as const, reason: 'stopped renewing its lease', finishedAt: new Date(T0 + 5000).toISOString() };
  await server.query(`update ${settings.schema}.runs set status = 'interrupted', record = $2::jsonb where id = $1`, [running.id, JSON.stringify(interrupted)]);

  t.equal(await owner.append({ ...running, progress: { step: 2 } }).durable, 'late', 'a progress report of the stalled owner');
  t.same(await peer.get(running.id), interrupted, 'is dropped');
  const success = { ...finished(running, 'success', T0 + 9000), output: { vacuumed: 1 }, verification: { ok: true, detail: 'fine' } };
  t.equal(await owner.append(success).durable, 'late', 'its final state');
  t.same(await peer.get(running.id), {
    ...interrupted,
    late: { status: 'success', finishedAt: success.finishedAt, output: { vacuumed: 1 }, verification: { ok: true, detail: 'fine' } },
  }, 'is attached as late; the status stays interrupted');
  t.same(await peer.list({ status: 'interrupted' }, null, 10), { runs: [await peer.get(running.id)], next: null }, 'and GET /runs filters it as interrupted');

  // The owner's write and a peer's mark racing on one run: the row's lock orders them, and exactly one finishes it.
  const raced = await Promise.all(Array.from({ length: 20 }, async (_, n) => {
    const run = { ...queued(T0 + n + 1), status: 'running' as const };
    await owner.append(run).durable;
    const [appended, marked] = await Promise.all([
      owner.append(finished(run, 'failure', T0 + HOUR)).durable,
      server.query(`update ${settings.schema}.runs set status = 'interrupted', record = record || '{"status":"interrupted"}' where id = $1 and status = 'running' returning 1`, [run.id]),
    ]);
    const stored = await peer.get(run.id);
    return { appended, marked: marked.length, status: stored?.status, late: stored?.late?.status };
  }));
  for (const { appended, marked, status, late } of raced) {
    t.same({ appended, marked, status, late }, appended === 'stored'
      ? { appended, marked: 0, status: 'failure', late: undefined }
      : { appended, marked: 1, status: 'interrupted', late: 'failure' });
  }
});

t.test('retention removes runs not written to for state.retention; maintenance runs on its own and logs its failures', async (t) => {
  const time = clock(T0);
  const captured = bufferLogger();
  const settings = options({ now: time.now, retentionMs: 2 * HOUR, log: captured.log, maintenanceMs: 20 });
  const store = await open(t, settings);
  const old = finished(queued(T0), 'success', T0);
  await store.append(old).durable;
  await store.guards.claimAlert('alert', old.id, T0);
  // Retention counts from the newest write, not from the clock alone: the next run is what ages the old one out.
  time.set(T0 + 2 * HOUR + 1);
  const recent = finished(queued(T0 + 2 * HOUR + 1), 'success', T0 + 2 * HOUR + 1);
  await store.append(recent).durable;
  await waitFor('the periodic maintenance to remove the old run', async () => {
    if (await store.get(old.id)) throw new Error('still there');
  });
  t.same(await store.get(recent.id), recent, 'the recent run stays');
  t.equal(await store.guards.claimAlert('alert', 'again', T0 + 2 * HOUR), old.id, 'the alert claim outlives the run');
  await server.query(`drop table ${settings.schema}.runs`);
  await store.maintain();
  t.match(captured.lines().at(-1), {
    level: 50, msg: 'state maintenance failed (retention, rotation or compaction); it is tried again within the hour',
    err: { type: 'StateStoreError', message: `state.postgres: applying state.retention: relation "${settings.schema}.runs" does not exist` },
  });
});

t.test('a clock far ahead of the newest run (a wrong date at boot) does not take the journal; retention counts from that run', async (t) => {
  const DAY = 24 * HOUR;
  // A year ahead; retention 90 days: by the clock alone every run would go.
  const time = clock(T0);
  const store = await open(t, options({ now: time.now, retentionMs: 90 * DAY }));
  const runs = [T0, T0 + DAY, T0 + 100 * DAY, T0 + 100 * DAY + 1].map((at) => finished(queued(at), 'success', at));
  for (const run of runs) {
    time.set(Date.parse(run.queuedAt));
    await store.append(run).durable;
  }
  time.set(T0 + 365 * DAY);
  await store.maintain();
  const kept = await Promise.all(runs.map(async (run) => (await store.get(run.id)) !== undefined));
  t.same(kept, [false, false, true, true], 'only the runs more than 90 days older than the newest run are removed');
});

t.test('text PostgreSQL cannot hold (NUL, lone surrogates) is stored as U+FFFD, in keys, values and columns', async (t) => {
  const store = await open(t, options());
  const run = finished(queued(T0, { remediation: 'bad\0name', params: { 'key\0': 'value\0\ud800', quote: 'a\\u0000b', pair: '\ud83d\ude00' } }), 'rejected', T0);
  await store.append(run).durable;
  const expected = { ...run, remediation: 'bad\uFFFDname', params: { 'key\uFFFD': 'value\uFFFD\uFFFD', quote: 'a\\u0000b', pair: '\ud83d\ude00' } };
  t.same(await store.get(run.id), expected);
  t.same((await store.list({ remediation: 'bad\0name' }, null, 10)).runs, [expected], 'a filter with the same text finds it');
  t.equal(storableText('\udc00x\ud800'), '\uFFFDx\uFFFD');
  t.equal(storableJson({ 'a\\': '\\u0000' }), '{"a\\\\":"\\\\u0000"}', 'escaped backslashes are left alone');
  await store.guards.recordOutcome({ remediation: 'r\0', runId: 'run\0', atMs: T0, executedLockKey: 'lock\0', result: 'failure' });
  t.equal(await store.guards.lastExecuted('lock\0'), T0);
  t.equal(await store.guards.recentFailures('r\0', 0), 1);
});

t.test('serve and run exit 1 with the store\'s message when the state database cannot be opened', async (t) => {
  const dir = await tempDir(t);
  const closedPort = await freePort();
  const file = join(dir, 'upkeep.yml');
  await writeFile(file, stringify({ state: { dir, postgres: { url: `postgres://upkeep_state:${PASSWORD}@127.0.0.1:${closedPort}/postgres` } } }));
  for (const args of [['serve', '--config', file, '--port', '0'], ['run', 'postgres.analyze', '--config', file, '--param', 'target=main']]) {
    const stdout: string[] = [];
    const stderr: string[] = [];
    t.equal(await main(args, { out: (line) => stdout.push(line), err: (line) => stderr.push(line), env: {} }), 1, args.join(' '));
    t.same([stdout, stderr], [[], [`state.postgres: migrating the schema: connect ECONNREFUSED 127.0.0.1:${closedPort}`]]);
  }
});

t.test('a row whose record is not a run record is skipped, like a line the file store cannot read', async (t) => {
  const settings = options();
  const store = await open(t, settings);
  const { host: _host, pid: _pid, ...good } = queued(T0);
  await store.append(good).durable;
  await server.query(`insert into ${settings.schema}.runs values ('bad', $1, 'r', 'running', 'manual', $2, 1, 0, '{"id": "bad"}')`, [T0 + 1, hostname()]);
  t.equal(await store.get('bad'), undefined);
  const page = await store.list({}, null, 1);
  t.same(page.runs, [], 'the page of one row holds nothing readable');
  t.same((await store.list({}, page.next, 10)).runs, [good], 'and its cursor goes on past it; a record without a host is kept as it is');
  t.same(await store.recoverInterrupted(new Date(T0)), [], 'nor is it taken for an unfinished run');
});
