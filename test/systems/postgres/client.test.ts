import t from 'tap';
import { z } from 'zod';
import { StateDb } from '../../../src/engine/state/postgres-db.js';
import { RunAbort } from '../../../src/engine/run-abort.js';
import { connectClient, connectPooled, createPool, databaseUrl, endPool } from '../../../src/systems/postgres/client.js';
import { waitFor } from '../../fixtures/ports.js';
import { silentServer } from '../../fixtures/silent-server.js';
import { startPostgres } from '../../fixtures/postgres.js';

t.test('a URL for another database of the same server keeps credentials and options', (t) => {
  t.equal(databaseUrl('postgres://monitor:secret@db.internal:5432/app?sslmode=require', 'reporting'), 'postgres://monitor:secret@db.internal:5432/reporting?sslmode=require');
  t.equal(databaseUrl('postgres://monitor@db.internal:5432', 'odd/name'), 'postgres://monitor@db.internal:5432/odd%2Fname');
  t.end();
});

t.test('connectClient: a server that never answers fails the connect at the timeout, in words', async (t) => {
  const silent = await silentServer(t);
  await t.rejects(connectClient(silent.url, 'test', { timeoutMs: 300 }), { message: 'the server did not answer within 0.3s of connecting' });
  await waitFor('the socket closed', async () => { if (silent.open() !== 0) throw new Error('still open'); });
});

t.test('connectClient and connectPooled: the run\'s abort ends the attempt at once with its reason, and closes the socket', async (t) => {
  const silent = await silentServer(t);
  const abort = new RunAbort();
  const connecting = connectClient(silent.url, 'test', { cancel: abort });
  await waitFor('the connection', async () => { if (silent.open() !== 1) throw new Error('not yet'); });
  const reason = new Error('deadline of 1s passed');
  abort.abort(reason);
  await t.rejects(connecting, reason);
  await waitFor('the socket closed', async () => { if (silent.open() !== 0) throw new Error('still open'); });
  await t.rejects(connectClient(silent.url, 'test', { cancel: abort }), reason, 'an abort that came first: no connection tried');
  t.equal(silent.open(), 0);

  const pool = createPool({ url: silent.url, max: 2, idleCloseMs: 1000, timeoutSeconds: 3600, applicationName: 'test' });
  const pooledAbort = new RunAbort();
  const pooled = connectPooled(pool, pooledAbort);
  await waitFor('the pool\'s connection', async () => { if (silent.open() !== 1) throw new Error('not yet'); });
  pooledAbort.abort(reason);
  await t.rejects(pooled, reason, 'the pool\'s connect given up on at once');
  await t.rejects(connectPooled(pool, pooledAbort), reason);
  // The pool's own attempt would go on to its connect timeout (30 s), holding pool.end() that long: endPool cuts it.
  const ended = endPool(pool).then(() => 'ended');
  t.equal(await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, 5000, 'still ending after 5 s').unref())]), 'ended');
  await waitFor('the pool\'s socket closed', async () => { if (silent.open() !== 0) throw new Error('still open'); });
});

t.test('connectPooled without a cancel is the pool\'s connect', async (t) => {
  const silent = await silentServer(t);
  const pool = createPool({ url: silent.url, max: 1, idleCloseMs: 1000, timeoutSeconds: 0.3, applicationName: 'test' });
  await t.rejects(connectPooled(pool), /timeout/);
  await endPool(pool);
});

t.test('a lent-out session whose backend is terminated between two queries is no crash; the pool goes on (createPool and the state store\'s pool)', async (t) => {
  const server = await startPostgres();
  t.teardown(() => server.destroy());
  const state = new StateDb({ url: server.url(), schema: 'upkeep', timeoutMs: 5000 });
  const pools = { createPool: createPool({ url: server.url(), max: 2, idleCloseMs: 1000, timeoutSeconds: 10, applicationName: 'lent-out' }), StateDb: state.pool };
  t.teardown(() => Promise.all([endPool(pools.createPool), state.pool.end()]));
  for (const [name, pool] of Object.entries(pools)) {
    const client = await pool.connect();
    const [{ pid }] = z.tuple([z.object({ pid: z.number() })]).parse((await client.query('select pg_backend_pid() as pid')).rows);
    // A restart's FATAL ("terminating connection due to administrator command") while nobody queries:
    // with no listener on the lent client, node threw it as an unhandled 'error' event and the process ended.
    await server.query('select pg_terminate_backend($1)', [pid]);
    await waitFor(`${name}: the backend gone`, async () => { if ((await server.query('select 1 from pg_stat_activity where pid = $1', [pid])).length > 0) throw new Error('still there'); });
    await t.rejects(client.query('select 1'), /terminat|not queryable|Connection terminated/, `${name}: the next query on it fails instead`);
    client.release(true);
    t.same((await pool.query('select 1 as one')).rows, [{ one: 1 }], `${name}: a new session answers`);
  }
});
