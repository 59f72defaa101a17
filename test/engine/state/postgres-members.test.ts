import t from 'tap';
import { z } from 'zod';
import type { CollectorModule } from '../../../src/collectors/framework/types.js';
import { buildApp, type App } from '../../../src/server.js';
import { tempDir, testConfig } from '../../http/helpers.js';
import { StateDb } from '../../../src/engine/state/postgres-db.js';
import { joinReplicas, Members } from '../../../src/engine/state/postgres-members.js';
import { migrate } from '../../../src/engine/state/postgres-migrate.js';
import { bufferLogger } from '../../fixtures/log.js';
import { waitFor } from '../../fixtures/ports.js';
import { startPostgres } from '../../fixtures/postgres.js';

const server = await startPostgres();
t.teardown(() => server.destroy());
// Short enough for a test to watch a member die, long enough for a loaded machine's heartbeats.
const TIMING = { heartbeatMs: 200, leaseMs: 1_500 };

let schemas = 0;
async function schema(t: { teardown(fn: () => unknown): void }): Promise<StateDb> {
  schemas += 1;
  const db = new StateDb({ url: server.url(), schema: `members_${schemas}`, timeoutMs: 10_000 });
  t.teardown(() => db.close());
  await migrate(db);
  return db;
}

t.test('replicas see each other; one that leaves is gone at the next heartbeat, one that dies once its lease expires', async (t) => {
  const db = await schema(t);
  const logs = [bufferLogger(), bufferLogger(), bufferLogger()];
  const members: Members[] = [];
  for (const log of logs) members.push(await Members.join(db, log.log, TIMING));
  const [first, second, third] = members as [Members, Members, Members];
  const everyone = members.map((member) => member.id).sort();
  t.equal(new Set(everyone).size, 3, 'each replica has its own id');
  t.match(first.id, /^[^/]+\/\d+\/[0-9a-f]{8}$/, 'host/pid/random');
  t.same(third.ids(), everyone, 'the last to join sees all three at once');
  t.notOk(third.settled(), 'but collects nothing until the others have seen it');
  await waitFor('the newcomer settled', async () => { if (!third.settled()) throw new Error('not yet'); }, 10_000, 20);
  await waitFor('the first two to see all three', async () => {
    if (first.ids().length !== 3 || second.ids().length !== 3) throw new Error(`${first.ids().length}, ${second.ids().length}`);
  }, 10_000, 50);
  t.same(first.ids(), everyone);

  await third.leave();
  t.same(await server.query(`select id from ${db.schema}.members where id = $1`, [third.id]), [], 'leaving deletes the row: the others need not wait for the lease');
  await waitFor('the leaver gone for the others', async () => {
    if (first.ids().includes(third.id) || second.ids().includes(third.id)) throw new Error('still there');
  }, 10_000, 20);

  // A replica whose heartbeat stops (its database connection gone, as for a kill -9) keeps its row until the lease expires.
  const lost = new StateDb({ url: server.url(), schema: db.schema, timeoutMs: 10_000 });
  const dying = await Members.join(lost, logs[2]!.log, TIMING);
  await waitFor('the newcomer seen', async () => { if (!first.ids().includes(dying.id)) throw new Error('not yet'); }, 10_000, 20);
  await lost.close();
  await waitFor('the dead replica dropped after its lease', async () => {
    if (first.ids().includes(dying.id)) throw new Error('still live');
  }, 10_000, 50);
  const [row] = await server.query<{ count: string }>(`select count(*) from members_1.members where id = $1`, [dying.id]);
  t.equal(row?.count, '1', 'its row stays (live is judged on the heartbeat, not on the row)');
  t.same(dying.ids().includes(dying.id), true, 'the cut-off replica still counts itself, with the last list it had');
  t.same(first.ids(), [first.id, second.id].sort());
  await first.leave();
  await second.leave();
  await dying.leave();

  t.match(logs[0]!.lines(), [
    { level: 30, member: first.id, members: 1, msg: 'joined the replicas' },
    { level: 30, member: first.id, msg: 'the live replicas changed' },
  ], 'the first replica logged joining and each change of the live replicas');
  t.ok(logs[0]!.lines().slice(1).every((line) => line.msg === 'the live replicas changed'), logs[0]!.text());
  const cutOff = logs[2]!.lines().filter((line) => line.msg !== 'the live replicas changed' && line.msg !== 'joined the replicas');
  t.match(cutOff, [
    // The pool can close between the heartbeat's two statements, so either one may be the one that fails.
    { level: 40, err: { message: /^state\.postgres: (renewing the membership heartbeat|reading the live replicas): / }, msg: 'membership heartbeat failed; this replica keeps collecting the targets it had' },
    { level: 40, err: { message: /^state\.postgres: leaving the replicas: / }, msg: 'cannot leave the replicas; the others take this replica\'s targets once its lease expires' },
  ], 'the cut-off replica said once that its heartbeat failed, and that it could not leave');
  t.equal(cutOff.length, 2, logs[2]!.text());
});

t.test('a heartbeat that fails and comes back is logged once each way', async (t) => {
  const db = await schema(t);
  const log = bufferLogger();
  const member = await Members.join(db, log.log, TIMING);
  t.teardown(() => member.leave());
  // The table gone: every heartbeat fails until it is back.
  await server.query(`alter table ${db.schema}.members rename to members_away`);
  await waitFor('the failure logged', async () => { if (!log.text().includes('heartbeat failed')) throw new Error('not yet'); }, 10_000, 20);
  await new Promise((resolve) => setTimeout(resolve, 3 * TIMING.heartbeatMs));
  await server.query(`alter table ${db.schema}.members_away rename to members`);
  await waitFor('the recovery logged', async () => { if (!log.text().includes('works again')) throw new Error('not yet'); }, 10_000, 20);
  t.match(log.lines(), [
    { level: 30, msg: 'joined the replicas' },
    { level: 40, err: { message: /^state\.postgres: renewing the membership heartbeat: relation .* does not exist/ }, msg: 'membership heartbeat failed; this replica keeps collecting the targets it had' },
    { level: 30, member: member.id, members: 1, msg: 'membership heartbeat works again' },
  ]);
  t.equal(log.lines().length, 3, 'a failure repeated every heartbeat is logged once');
  t.same(member.ids(), [member.id]);
});

t.test('back after the database was out of reach for longer than the lease, no replica takes itself for the only one', async (t) => {
  const db = await schema(t);
  const logs = [bufferLogger(), bufferLogger()];
  const members = [await Members.join(db, logs[0]!.log, TIMING), await Members.join(db, logs[1]!.log, TIMING)];
  t.teardown(() => Promise.all(members.map((member) => member.leave())));
  await waitFor('both seeing both', async () => { if (members.some((member) => member.ids().length !== 2)) throw new Error('not yet'); }, 10_000, 20);
  await server.query(`alter table ${db.schema}.members rename to members_away`);
  await new Promise((resolve) => setTimeout(resolve, TIMING.leaseMs + 4 * TIMING.heartbeatMs));
  await server.query(`alter table ${db.schema}.members_away rename to members`);
  // Each replica's list, sampled until both are back and a lease has passed: read at once after the
  // outage, the first to beat saw only itself (the other's heartbeat was older than the lease).
  const alone = new Set<string>();
  const recovered = () => logs.every((log) => log.text().includes('membership heartbeat works again'));
  let since: number | null = null;
  await waitFor('both back, and a lease past', async () => {
    for (const member of members) if (member.ids().length < 2) alone.add(member.id);
    if (since === null && recovered()) since = performance.now();
    if (since === null || performance.now() - since < TIMING.leaseMs + 2 * TIMING.heartbeatMs) throw new Error('not yet');
  }, 20_000, 5);
  t.same([...alone], [], 'neither replica ever saw itself alone');
  t.same(members.map((member) => member.ids().length), [2, 2]);
});

t.test('joinReplicas: null with the file store; with the PostgreSQL store it joins on its own pool, forgets day-old rows, and a failure to join throws', async (t) => {
  const fileStore = testConfig({ state: { dir: '/tmp/upkeep-members-unused' } });
  t.equal(await joinReplicas(fileStore, bufferLogger().log), null);

  const db = await schema(t);
  await server.query(`insert into ${db.schema}.members (id, host, pid, heartbeat_at) values ('gone/1/00000000', 'gone', 1, now() - interval '2 days'), ('recent/2/00000000', 'recent', 2, now() - interval '1 hour')`);
  const shared = testConfig({ state: { dir: '/tmp/upkeep-members-unused', postgres: { url: server.url(), schema: db.schema, memberHeartbeatSeconds: 1, memberLeaseSeconds: 3 } } });
  const log = bufferLogger();
  const joined = await joinReplicas(shared, log.log);
  t.ok(joined);
  t.same(joined?.members.ids(), [joined?.members.id], 'dead rows are not live');
  const rows = await server.query<{ id: string }>(`select id from ${db.schema}.members order by id`);
  t.same(rows.map((row) => row.id), [joined?.members.id, 'recent/2/00000000'].sort(), 'the two-day-old row was forgotten, the hour-old one kept');
  await joined?.close();
  t.same(await server.query(`select id from ${db.schema}.members where id = $1`, [joined?.members.id]), [], 'closing left the replicas');

  const unmigrated = testConfig({ state: { dir: '/tmp/upkeep-members-unused', postgres: { url: server.url(), schema: 'never_migrated' } } });
  await t.rejects(joinReplicas(unmigrated, bufferLogger().log), { message: /^state\.postgres: forgetting long-dead replicas: relation "never_migrated\.members" does not exist/ });
});

t.test('two apps on one PostgreSQL store share four targets: each exposes its own, and says how many it has and sees', async (t) => {
  const db = await schema(t);
  const targets = ['a', 'b', 'c', 'd'];
  const fake: CollectorModule = {
    name: 'fake',
    families: [{ name: 'test_fake_value', help: 'A test value.', type: 'gauge', labelNames: ['target'] }],
    build: () => targets.map((target) => ({ collector: 'fake', target, collect: async () => ({ readings: [{ family: 'test_fake_value', labels: { target }, value: 1 }] }) })),
  };
  const build = async (postgres: boolean) => {
    const app = await buildApp({ config: testConfig({ state: { dir: await tempDir(t), ...(postgres ? { postgres: { url: server.url(), schema: db.schema } } : {}) } }), log: bufferLogger().log, collectors: [fake] });
    t.teardown(() => app.fastify.close());
    return app;
  };
  const apps = [await build(true), await build(true)];
  const scrape = async (app: App) => (await app.fastify.inject({ method: 'GET', url: '/metrics' })).body;
  const exposed = (text: string) => [...text.matchAll(/^test_fake_value\{target="(\w)"\} 1$/gm)].map((match) => match[1] ?? '');
  t.same(exposed(await scrape(apps[1]!)), [], 'a replica that just joined collects nothing yet');
  const texts = await waitFor('both to be settled and see each other', async () => {
    const scraped = await Promise.all(apps.map((app) => scrape(app)));
    if (scraped.some((text) => !/^upkeep_replica_members 2$/m.test(text)) || scraped.flatMap(exposed).length !== targets.length) throw new Error('not yet');
    return scraped;
  }, 20_000, 200);
  t.same(texts.flatMap(exposed).sort(), targets, 'every target exposed once across the two');
  for (const text of texts) t.match(text, new RegExp(`^upkeep_replica_targets ${exposed(text).length}$`, 'm'));
  const statuses = await Promise.all(apps.map(async (app) => z.object({ targets: z.array(z.object({ target: z.string() })) }).parse((await app.fastify.inject({ method: 'GET', url: '/readyz' })).json()).targets.map((status) => status.target)));
  t.same(statuses, texts.map(exposed), '/readyz lists the same share');

  const alone = await build(false);
  const text = await scrape(alone);
  t.same(exposed(text), targets, 'with the file store, one replica collects every target');
  t.match(text, /^upkeep_replica_targets 4$/m);
  t.match(text, /^upkeep_replica_members 1$/m);
});
