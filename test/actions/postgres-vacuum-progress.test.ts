import pg from 'pg';
import t from 'tap';
import { runVacuums } from '../../src/actions/postgres-vacuum-progress.js';
import { z } from 'zod';
import { runRecordSchema } from '../../src/engine/journal.js';
import { formatRun } from '../../src/triggers/cli.js';
import { bufferLogger } from '../fixtures/log.js';
import { buildContext } from './context.js';
import { waitFor } from '../fixtures/ports.js';
import { finishedRun, startApp, tempDir, testConfig } from '../http/helpers.js';
import { slowVacuumTable, startTestPostgres, tableStats, tableWithDeadTuples } from './postgres-fixture.js';

// A long postgres.vacuum journals its progress (phase, heap blocks) while it runs, and keeps the last.

t.test('a long vacuum writes its phase and heap blocks into its journal entry while it runs; upkeep run prints the last', async (t) => {
  const server = await startTestPostgres(t);
  await slowVacuumTable(server, 'app', 'orders');
  const logger = bufferLogger('info');
  // On the executor thread, as `upkeep serve` runs it: the progress and the log lines cross from there.
  const app = await startApp(t, testConfig({ state: { dir: await tempDir(t) }, targets: { postgres: [{ name: 'main', url: server.url('app') }] }, remediation: { executor: 'thread' } }), logger.log);
  const reply = await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.vacuum', payload: { params: { target: 'main', database: 'app', table: 'orders', progressSeconds: 1 } } });
  t.equal(reply.statusCode, 202);
  const { runId } = z.object({ runId: z.string() }).parse(reply.json());

  const running = await waitFor('progress in the running run', async () => {
    const record = runRecordSchema.parse((await app.fastify.inject({ url: `/runs/${runId}` })).json());
    if (record.status !== 'running' || record.progress === undefined) throw new Error(`${record.status}, no progress yet`);
    return record;
  }, 60_000, 100);
  t.match(running.progress, {
    statement: 'VACUUM (ANALYZE) "public"."orders"',
    phase: /^(scanning heap|vacuuming indexes|vacuuming heap|cleaning up indexes|truncating heap|performing final cleanup|initializing)$/,
    heapBlocks: Number,
    heapBlocksScanned: Number,
    summary: /^VACUUM \(ANALYZE\) "public"\."orders": [a-z ]+, \d+\/\d+ heap blocks scanned$/,
  });
  t.ok(Number(running.progress?.heapBlocks) > 1000, 'the table\'s heap blocks');

  const done = await finishedRun(app, runId);
  t.equal(done.status, 'success', done.error ?? '');
  t.match(done.progress, { statement: 'VACUUM (ANALYZE) "public"."orders"', summary: String }, 'the final entry keeps the last progress');
  t.match(done.output, { statements: ['VACUUM (ANALYZE) "public"."orders"'], progress: [{ statement: 'VACUUM (ANALYZE) "public"."orders"', phase: String }] });
  t.ok(formatRun(done).includes(`progress: ${String(done.progress?.summary)}`), 'upkeep run prints it');
  t.equal((await tableStats(server, 'app', 'orders')).deadTuples, 0);
  const lines = logger.lines().filter((line) => line.msg === 'vacuum in progress');
  t.ok(lines.length > 0, 'and logs it');
  t.match(lines[0], { runId, remediation: 'postgres.vacuum', statement: 'VACUUM (ANALYZE) "public"."orders"', phase: String, heapBlocks: Number, heapBlocksScanned: Number });
});

t.test('a vacuum too short to be seen reports no progress', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await tableWithDeadTuples(server, 'app', 'small', 10, 5);
  const app = await startApp(t, testConfig({ state: { dir: await tempDir(t) }, targets: { postgres: [{ name: 'main', url: server.url('app') }] } }));
  const reply = await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.vacuum?wait=true', payload: { params: { target: 'main', database: 'app', table: 'small', minDeadTuples: 0, progressSeconds: 3600 } } });
  const record = runRecordSchema.parse(reply.json());
  t.equal(record.status, 'success', record.error ?? record.reason ?? '');
  t.equal(record.progress, undefined);
  t.match(record.output, { progress: [] });
  t.notOk(formatRun(record).some((line) => line.startsWith('progress:')));
});

t.test('a VACUUM that cannot lock its table fails saying so; an aborted run runs nothing', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await tableWithDeadTuples(server, 'app', 'orders', 10, 5);
  const holder = new pg.Client({ connectionString: server.url('app') });
  await holder.connect();
  t.teardown(() => holder.end());
  await holder.query('begin');
  await holder.query('lock table orders in access exclusive mode');
  const app = await startApp(t, testConfig({ state: { dir: await tempDir(t) }, targets: { postgres: [{ name: 'main', url: server.url('app') }] }, remediation: { lockTimeoutSeconds: 1 } }));
  const reply = await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.vacuum?wait=true', payload: { params: { target: 'main', database: 'app', table: 'orders', minDeadTuples: 0 } } });
  const record = runRecordSchema.parse(reply.json());
  t.equal(record.status, 'failure');
  t.match(record.error, /^could not lock "public"\."orders" within lock_timeout \(1s\): another session holds a conflicting lock/);
  await holder.query('rollback');

  const context = buildContext({ targets: { postgres: [{ name: 'main', url: server.url('app') }] } });
  t.teardown(() => context.close());
  context.abort.abort(new Error('deadline'));
  await t.rejects(runVacuums(context, { target: 'main', database: 'app' }, ['VACUUM "public"."orders"'], 'orders', 1), /deadline/);
  t.equal((await tableStats(server, 'app', 'orders')).vacuumCount, 0, 'nothing was vacuumed');
});

t.test('a role that may not vacuum the table: PostgreSQL skips it with a warning, and the failed verification says so', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await tableWithDeadTuples(server, 'app', 'orders', 10, 5);
  await server.query('create role reporter login');
  await server.query('grant select on all tables in schema public to reporter', [], 'app');
  const url = server.url('app').replace('postgres@', 'reporter@');
  const app = await startApp(t, testConfig({ state: { dir: await tempDir(t) }, targets: { postgres: [{ name: 'main', url }] } }));
  const reply = await app.fastify.inject({ method: 'POST', url: '/remediations/postgres.vacuum?wait=true', payload: { params: { target: 'main', database: 'app', table: 'orders', minDeadTuples: 0 } } });
  const record = runRecordSchema.parse(reply.json());
  t.equal(record.status, 'failure');
  t.equal(record.error, 'verification failed: "public"."orders": no sign the vacuum ran (vacuum_count 0, was 0); PostgreSQL warned: skipping "orders" --- only table or database owner can vacuum it');
  t.match(record.output, { warnings: [/only table or database owner can vacuum it/] });
});
