import t from 'tap';
import { StateDb } from '../../../src/engine/state/postgres-db.js';
import { migrate } from '../../../src/engine/state/postgres-migrate.js';
import { PostgresStore } from '../../../src/engine/state/postgres-store.js';
import { PostgresSuccesses } from '../../../src/engine/state/postgres-successes.js';
import { bufferLogger } from '../../fixtures/log.js';
import { startPostgres } from '../../fixtures/postgres.js';

const server = await startPostgres();
t.teardown(() => server.destroy());
const T0 = Date.UTC(2026, 2, 5, 4, 30);
const HOUR = 3_600_000;

let schemas = 0;
async function schema(t: { teardown(fn: () => unknown): void }): Promise<StateDb> {
  schemas += 1;
  const db = new StateDb({ url: server.url(), schema: `successes_${schemas}`, timeoutMs: 10_000 });
  t.teardown(() => db.close());
  await migrate(db);
  return db;
}

const verify = (subject: string, atMs: number, detail: string) => ({ remediation: 'backup.verify', subject, atMs, detail });

t.test('the newest success of each subject is kept, whichever replica records it and in whatever order', async (t) => {
  const db = await schema(t);
  const [a, b] = [new PostgresSuccesses(db), new PostgresSuccesses(db)];
  t.same(await a.read('backup.verify'), [], 'nothing before the first success');
  await a.record(verify('refnet', T0, 'refnet_20260305_0430.sql.gz'));
  t.same(await b.read('backup.verify'), [verify('refnet', T0, 'refnet_20260305_0430.sql.gz')], 'the other replica reads it, time and file');
  await b.record(verify('refnet', T0 + HOUR, 'refnet_20260305_0530.sql.gz'));
  await a.record(verify('refnet', T0 + HOUR / 2, 'refnet_late.sql.gz'));
  await a.record(verify('billing', T0 + 1.5, 'billing_1.sql.gz'));
  await a.record({ remediation: 'other.action', subject: 'refnet', atMs: T0 + 2 * HOUR, detail: 'x' });
  t.same(await a.read('backup.verify'), [verify('billing', T0 + 1, 'billing_1.sql.gz'), verify('refnet', T0 + HOUR, 'refnet_20260305_0530.sql.gz')],
    'an older success recorded late does not move the newest back; times are whole milliseconds; one row per subject, of this remediation only');
  t.same(await server.query(`select remediation, subject, at_ms::float8 as at_ms, detail from successes_${schemas}.success_records order by remediation, subject`), [
    { remediation: 'backup.verify', subject: 'billing', at_ms: T0 + 1, detail: 'billing_1.sql.gz' },
    { remediation: 'backup.verify', subject: 'refnet', at_ms: T0 + HOUR, detail: 'refnet_20260305_0530.sql.gz' },
    { remediation: 'other.action', subject: 'refnet', at_ms: T0 + 2 * HOUR, detail: 'x' },
  ]);
});

t.test('a subject or detail PostgreSQL cannot hold as text is kept with U+FFFD in its place', async (t) => {
  const db = await schema(t);
  const successes = new PostgresSuccesses(db);
  await successes.record(verify('a\u0000b', T0, 'f\uD800.sql.gz'));
  t.same(await successes.read('backup.verify'), [verify('a\uFFFDb', T0, 'f\uFFFD.sql.gz')]);
});

t.test('the store opens with its success records, which survive a restart and retention', async (t) => {
  schemas += 1;
  const options = { url: server.url(), schema: `successes_${schemas}`, timeoutMs: 10_000, retentionMs: HOUR, cooldownMs: HOUR, failureWindowMs: HOUR, log: bufferLogger().log };
  const first = await PostgresStore.open(options);
  await first.successes.record(verify('refnet', T0, 'refnet_1.sql.gz'));
  await first.maintain();
  await first.close();
  const again = await PostgresStore.open(options);
  t.teardown(() => again.close());
  t.same(await again.successes.read('backup.verify'), [verify('refnet', T0, 'refnet_1.sql.gz')], 'kept though older than state.retention: one row per backup');
});

t.test('an error names what the store was doing', async (t) => {
  const db = await schema(t);
  await server.query(`drop table successes_${schemas}.success_records`);
  const successes = new PostgresSuccesses(db);
  await t.rejects(successes.read('backup.verify'), { message: /^state\.postgres: reading the successes: relation "successes_\d+\.success_records" does not exist$/ });
  await t.rejects(successes.record(verify('refnet', T0, 'f')), { message: /^state\.postgres: recording a success: relation "successes_\d+\.success_records" does not exist$/ });
});
