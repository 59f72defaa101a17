import t from 'tap';
import { once, PartialWork, type ActionContext } from '../../src/actions/contract.js';
import { vacuum } from '../../src/actions/postgres.js';
import { startTestPostgres, tableWithDeadTuples } from './postgres-fixture.js';
import { buildContext } from './context.js';

t.test('once: a step runs once per run memo, a failure is not kept, and without a memo every phase computes', async (t) => {
  const base = buildContext({});
  t.teardown(() => base.close());
  const context: ActionContext = { ...base, memo: new Map() };
  let calls = 0;
  const step = async () => { calls += 1; return { calls }; };
  const first = await once(context, 'k', step);
  const second = await once(context, 'k', step);
  t.equal(first, second, 'the same result, shared');
  t.equal(calls, 1);
  t.same(await once(context, 'other', step), { calls: 2 }, 'another key is another step');

  let failures = 0;
  const flaky = async () => {
    failures += 1;
    if (failures === 1) throw new Error('catalog unreachable');
    return 'read';
  };
  await t.rejects(once(context, 'flaky', flaky), /catalog unreachable/);
  t.equal(await once(context, 'flaky', flaky), 'read', 'a later phase tries again');

  calls = 0;
  await once(base, 'k', step);
  await once(base, 'k', step);
  t.equal(calls, 2, 'no memo: each call computes');
});

t.test('PartialWork carries the cause\'s message and what was done', async (t) => {
  const cause = new Error('connection lost');
  const partial = new PartialWork(cause, { deleted: 3 });
  t.equal(partial.message, 'connection lost');
  t.equal(partial.cause, cause);
  t.same(partial.done, { deleted: 3 });
  t.equal(new PartialWork('text', {}).message, 'text');
});

t.test('postgres.vacuum: check and plan of one run act on one listing of the candidates', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await tableWithDeadTuples(server, 'app', 'first');
  const base = buildContext({ targets: { postgres: [{ name: 'main', url: server.url('app') }] } });
  t.teardown(() => base.close());
  const context: ActionContext = { ...base, memo: new Map() };
  const params = await vacuum.resolve(vacuum.params.parse({ target: 'main', database: 'app', minDeadTuples: 100 }), context);
  const check = await vacuum.check(params, context);
  t.match(check.reason, /first/);
  // A second table crosses the threshold between the check and the plan: the plan keeps to what
  // the check saw (the next run picks it up), so what the journal's check says is what ran.
  await tableWithDeadTuples(server, 'app', 'second');
  const plan = await vacuum.plan(params, context);
  t.same(plan.payload.statements, ['VACUUM (ANALYZE) "public"."first"']);
  const fresh = await vacuum.plan(params, { ...base, memo: new Map() });
  t.same(fresh.payload.statements.length, 2, 'a new run lists both');
});
