import pg from 'pg';
import t from 'tap';
import { z } from 'zod';
import { terminateIdle, terminateStatement } from '../../src/actions/postgres-terminate.js';
import { ValidationError } from '../../src/errors.js';
import type { PostgresServer } from '../fixtures/postgres.js';
import { waitFor } from '../fixtures/ports.js';
import { buildContext, perform } from './context.js';
import { startTestPostgres } from './postgres-fixture.js';

// postgres.terminate_idle ends sessions idle in a transaction past a threshold, and nothing else.

const activity = z.array(z.object({ pid: z.number(), state: z.string().nullable() }));

/** A session of `user` on `database`, named `application`, left in `state`. Its client ignores being ended. */
async function session(t: { teardown(fn: () => unknown): void }, server: PostgresServer, options: { user: string; database?: string; application: string; inTransaction: boolean }): Promise<{ pid: number; client: pg.Client }> {
  const client = new pg.Client({ connectionString: server.url(options.database ?? 'app').replace('postgres@', `${options.user}@`), application_name: options.application });
  client.on('error', () => undefined);
  await client.connect();
  t.teardown(() => client.end().catch(() => undefined));
  if (options.inTransaction) {
    await client.query('begin');
    await client.query('select txid_current()');
  }
  const [row] = z.tuple([z.object({ pid: z.number() })]).parse((await client.query('select pg_backend_pid() as pid')).rows);
  return { pid: row.pid, client };
}

async function backends(server: PostgresServer): Promise<Map<number, string | null>> {
  const rows = activity.parse(await server.query("select pid, state from pg_stat_activity where backend_type = 'client backend'"));
  return new Map(rows.map((row) => [row.pid, row.state]));
}

t.test('the terminating statement names one backend by pid and start time, and refuses anything else', async (t) => {
  const statement = terminateStatement({ pid: 4242, backendStart: '2026-11-30T10:00:00.123456Z' }, 60);
  t.match(statement, /WHERE a\.pid = 4242 AND a\.backend_start = '2026-11-30T10:00:00\.123456Z'::timestamptz\n/);
  t.match(statement, /a\.state_change < now\(\) - make_interval\(secs => 60\)/);
  t.match(statement, /NOT r\.rolsuper AND NOT r\.rolreplication/);
  t.throws(() => terminateStatement({ pid: 4242, backendStart: "2026-11-30'; drop table x; --" }, 60), /Invalid string/);
  t.throws(() => terminateStatement({ pid: -1, backendStart: '2026-11-30T10:00:00.123456Z' }, 60));
  t.throws(() => terminateStatement({ pid: 1, backendStart: '2026-11-30T10:00:00.123456Z' }, -5));
});

t.test('params: idleSeconds is required and counts; the risk is destructive', async (t) => {
  t.equal(terminateIdle.params.safeParse({ target: 'main' }).success, false);
  t.same(terminateIdle.params.parse({ target: 'main', idleSeconds: '600' }), { target: 'main', idleSeconds: 600 });
  t.equal(terminateIdle.params.safeParse({ target: 'main', idleSeconds: 60, query: 'x' }).success, false, 'no other params');
  t.equal(terminateIdle.risk({ target: 'main', idleSeconds: 60 }), 'destructive');
});

t.test('against a real server: ends the old idle-in-transaction sessions, never a superuser\'s, a replication role\'s, upkeep\'s or another database\'s', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await server.query('create database other');
  await server.query('create role app_user login');
  await server.query('create role replicator login replication');
  const idler = await session(t, server, { user: 'app_user', application: 'report-job', inTransaction: true });
  const busy = await session(t, server, { user: 'app_user', application: 'web', inTransaction: false });
  const superuser = await session(t, server, { user: 'postgres', application: 'psql', inTransaction: true });
  const replicator = await session(t, server, { user: 'replicator', application: 'pg_receivewal', inTransaction: true });
  const ours = await session(t, server, { user: 'app_user', application: 'upkeep:20261130T120000Z-0001', inTransaction: true });
  const elsewhere = await session(t, server, { user: 'app_user', database: 'other', application: 'report-job', inTransaction: true });
  await waitFor('the sessions idle for over a second', async () => {
    const [row] = await server.query<{ idle: number }>("select count(*)::int as idle from pg_stat_activity where state = 'idle in transaction' and state_change < now() - interval '1.2 seconds'");
    if (row?.idle !== 5) throw new Error(`${row?.idle} idle so far`);
  });

  const context = buildContext({ targets: { postgres: [{ name: 'main', url: server.url('postgres'), databases: ['app', 'other'] }] } });
  t.teardown(() => context.close());

  const young = await terminateIdle.check({ target: 'main', idleSeconds: 3600 }, context);
  t.same(young, { proceed: false, reason: 'no session on target main has been idle in a transaction for over 3600s', observed: { sessions: [] } });

  // A role without pg_read_all_stats sees no other role's state: its "none qualifies" says why.
  await server.query('create role blind login');
  const blindContext = buildContext({ targets: { postgres: [{ name: 'blind', url: server.url('postgres').replace('//postgres@', '//blind@'), databases: ['app', 'other'] }] } });
  t.teardown(() => blindContext.close());
  t.same(await terminateIdle.check({ target: 'blind', idleSeconds: 1 }, blindContext), {
    proceed: false, observed: { sessions: [] },
    reason: 'no session on target blind has been idle in a transaction for over 1s (this role cannot see other roles\' sessions: grant it pg_read_all_stats, see docs/security.md)',
  }, 'four sessions qualify; this role sees none of them');

  const performed = await perform(terminateIdle, { target: 'main', idleSeconds: 1, database: 'app' }, context);
  t.equal(performed.before.proceed, true);
  t.match(performed.before.reason, new RegExp(`^1 session\\(s\\) idle in a transaction for over 1s: pid ${idler.pid} \\(user app_user, application "report-job", 127\\.0\\.0\\.1, database app, idle in transaction for \\d+s, xmin age \\d+\\)$`));
  t.equal(performed.plan.length, 1);
  t.match(performed.plan[0]?.detail, new RegExp(`^SELECT pg_terminate_backend\\(a\\.pid\\) AS terminated .*WHERE a\\.pid = ${idler.pid} AND a\\.backend_start = '[-0-9T:.]+Z'::timestamptz`, 's'));
  t.match(performed.payload, { idleSeconds: 1, sessions: [{ pid: idler.pid, backendStart: /Z$/ }] });
  t.match(performed.output.detail, { terminated: [{ pid: idler.pid }], leftAlone: [] });
  t.same(performed.verification, { ok: true, detail: `ended: pid ${idler.pid}`, observed: performed.output.detail });

  const left = await backends(server);
  t.notOk(left.has(idler.pid), 'the idle session is gone');
  t.equal(left.get(busy.pid), 'idle', 'a session outside a transaction stays');
  for (const { pid } of [superuser, replicator, ours, elsewhere]) t.equal(left.get(pid), 'idle in transaction', `pid ${pid} stays`);
  await t.rejects(idler.client.query('select 1'), 'its client finds the connection ended');

  // Server-wide without a database: the one in "other" goes too; still never the superuser's, the replicator's or upkeep's.
  const wide = await perform(terminateIdle, { target: 'main', idleSeconds: 1 }, context);
  t.match(wide.output.detail, { terminated: [{ pid: elsewhere.pid }], leftAlone: [] });
  t.equal(wide.verification.ok, true);
});

t.test('a planned session that committed before the run is left alone, and the run says so', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await server.query('create role app_user login');
  const idler = await session(t, server, { user: 'app_user', application: 'report-job', inTransaction: true });
  const context = buildContext({ targets: { postgres: [{ name: 'main', url: server.url('app') }] } });
  t.teardown(() => context.close());
  const params = await terminateIdle.resolve(terminateIdle.params.parse({ target: 'main', idleSeconds: 0, database: 'app' }), context);
  const plan = await terminateIdle.plan(params, context);
  t.match(plan.payload.sessions, [{ pid: idler.pid }]);
  await idler.client.query('commit');
  const output = await terminateIdle.run(params, plan.payload, context);
  t.same(output.detail, { terminated: [], leftAlone: plan.payload.sessions });
  const verification = await terminateIdle.verify(params, { proceed: true, reason: '' }, output, context);
  t.same(verification, { ok: true, detail: `ended: none; left alone (no longer idle in a transaction past the threshold, or gone): pid ${idler.pid}`, observed: output.detail });
  t.equal((await backends(server)).get(idler.pid), 'idle', 'the session lives on');

  // A backend still there after the run fails the verification (aborted: one look, no waiting).
  context.abort.abort(new Error('deadline'));
  const alive = await terminateIdle.verify(params, { proceed: true, reason: '' }, { detail: { terminated: [...plan.payload.sessions], leftAlone: [] } }, context);
  t.same(alive, { ok: false, detail: `still running after pg_terminate_backend: pid ${idler.pid}`, observed: { remaining: [idler.pid] } });
  await t.rejects(terminateIdle.run(params, plan.payload, context), /deadline/, 'an aborted run signals nothing');
  t.equal((await backends(server)).get(idler.pid), 'idle');
});

t.test('screen and resolve: an unknown target or a database the target does not list is refused before anything connects', async (t) => {
  const context = buildContext({ targets: { postgres: [{ name: 'main', url: 'postgres://upkeep@127.0.0.1:1/app', databases: ['app'] }] } });
  t.teardown(() => context.close());
  t.throws(() => terminateIdle.screen?.({ target: 'nope', idleSeconds: 1 }, context.config, 'alert'), new ValidationError('unknown postgres target "nope"'));
  t.throws(() => terminateIdle.screen?.({ target: 'main', idleSeconds: 1, database: 'other' }, context.config, 'alert'), /database "other" is not in targets\.postgres "main" databases \(app\)/);
  t.same(await terminateIdle.resolve({ target: 'main', idleSeconds: 1, database: 'app' }, context), { target: 'main', idleSeconds: 1, database: 'app' }, 'a listed database needs no discovery');
  t.same(terminateIdle.lock({ target: 'main', idleSeconds: 1 }, context.config), { kind: 'postgres', target: 'main', database: 'app', key: 'terminate_idle' });
});
