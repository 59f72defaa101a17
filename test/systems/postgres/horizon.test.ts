import pg from 'pg';
import t from 'tap';
import { describeHolder, heldAtVacuum, horizonHolders, type HorizonHolder } from '../../../src/systems/postgres/horizon.js';
import { startTestPostgres } from '../../actions/postgres-fixture.js';

const backend: HorizonHolder = { kind: 'backend', name: '4242', state: 'idle in transaction', age: 1234, idle_seconds: 310.4, since: 1000 };

t.test('each kind of holder is named as the journal shows it', async (t) => {
  t.equal(describeHolder(backend), 'backend pid 4242 (idle in transaction, xmin age 1234, idle 310s)');
  t.equal(describeHolder({ ...backend, state: null, idle_seconds: null }), 'backend pid 4242 (unknown state, xmin age 1234, idle 0s)');
  t.equal(describeHolder({ kind: 'prepared_xact', name: 'batch-7', state: null, age: 55, idle_seconds: null, since: 1000 }), 'prepared transaction "batch-7" (xmin age 55)');
  t.equal(describeHolder({ kind: 'replication_slot', name: 'replica_slot', state: 'inactive', age: 9, idle_seconds: null, since: null }), 'replication slot "replica_slot" (inactive, xmin age 9)');
  t.equal(describeHolder({ kind: 'standby', name: 'replica1', state: 'streaming', age: 3, idle_seconds: null, since: null }), 'standby "replica1" (hot_standby_feedback, xmin age 3)');
});

t.test('a holder counts when it already held the horizon at the table\'s last vacuum', async (t) => {
  t.equal(heldAtVacuum(backend, null), false, 'never vacuumed: older dead tuples may be removable');
  t.equal(heldAtVacuum(backend, 2000), true, 'began before the last vacuum');
  t.equal(heldAtVacuum(backend, 500), false, 'began after it');
  t.equal(heldAtVacuum({ ...backend, kind: 'replication_slot', since: null }, 500), true, 'a slot has no start: any vacuum at all');
});

t.test('horizonHolders reads this database\'s idle transactions and prepared transactions, oldest first, never its own session', async (t) => {
  const server = await startTestPostgres(t, { max_prepared_transactions: '2' });
  await server.query('create database app');
  await server.query("begin; select txid_current(); prepare transaction 'batch-7'", [], 'app');
  t.teardown(() => server.query("rollback prepared 'batch-7'", [], 'app'));
  const idle = new pg.Client({ connectionString: server.url('app') });
  await idle.connect();
  t.teardown(() => idle.end());
  await idle.query('begin');
  await idle.query('select txid_current()');
  const reader = new pg.Client({ connectionString: server.url('app') });
  await reader.connect();
  t.teardown(() => reader.end());
  const holders = await horizonHolders(reader);
  t.same(holders.map((holder) => [holder.kind, holder.kind === 'backend' ? holder.state : holder.name]), [['prepared_xact', 'batch-7'], ['backend', 'idle in transaction']]);
  t.ok(holders.every((holder) => holder.since !== null && holder.age > 0), 'both with a start and an age');
});
