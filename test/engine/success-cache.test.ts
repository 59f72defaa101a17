import t from 'tap';
import type { SuccessRecord, SuccessRecords } from '../../src/engine/state/store.js';
import { SuccessCache } from '../../src/engine/success-cache.js';
import { bufferLogger } from '../fixtures/log.js';

const REFRESH_MS = 30_000;
const verify = (subject: string, atMs: number, detail = `${subject}.sql.gz`): SuccessRecord => ({ remediation: 'backup.verify', subject, atMs, detail });

/** A shared store in memory that counts its reads and fails while told to. */
function sharedStore() {
  const rows: SuccessRecord[] = [];
  const store = {
    reads: 0,
    failWith: null as Error | null,
    hang: false,
    rows,
    async record(success: SuccessRecord) {
      if (store.failWith) throw store.failWith;
      rows.push(success);
    },
    async read(remediation: string): Promise<SuccessRecord[]> {
      store.reads += 1;
      if (store.hang) return new Promise(() => undefined);
      if (store.failWith) throw store.failWith;
      return rows.filter((row) => row.remediation === remediation);
    },
  } satisfies SuccessRecords & Record<string, unknown>;
  return store;
}

function cache(store: SuccessRecords) {
  const clock = { ms: 0 };
  const log = bufferLogger();
  return { cache: new SuccessCache(store, log.log, () => clock.ms, REFRESH_MS), clock, log };
}

const entries = (map: ReadonlyMap<string, SuccessRecord>) => [...map.entries()];

t.test('a scrape reads the shared store at most every 30 s; a success this replica records is seen at once', async (t) => {
  const store = sharedStore();
  const { cache: successes, clock } = cache(store);
  store.rows.push(verify('refnet', 1000));
  t.same(entries(await successes.read('backup.verify')), [['refnet', verify('refnet', 1000)]], 'the first scrape reads it');
  store.rows.push(verify('billing', 2000));
  clock.ms = REFRESH_MS - 1;
  t.same(entries(await successes.read('backup.verify')), [['refnet', verify('refnet', 1000)]], 'a peer\'s new success waits for the refresh');
  t.equal(store.reads, 1);
  await successes.record(verify('refnet', 3000, 'refnet_new.sql.gz'));
  t.same(entries(await successes.read('backup.verify')), [['refnet', verify('refnet', 3000, 'refnet_new.sql.gz')]], 'this replica\'s own is shown at once');
  t.equal(store.reads, 1, 'without reading the store');
  clock.ms = REFRESH_MS;
  t.same(entries(await successes.read('backup.verify')).sort(), [['billing', verify('billing', 2000)], ['refnet', verify('refnet', 3000, 'refnet_new.sql.gz')]]);
  t.equal(store.reads, 2, 'read again after 30 s');
  t.same(entries(await successes.read('other.action')), [], 'each remediation its own');
});

t.test('an older record read back does not replace a newer one kept here', async (t) => {
  const store = sharedStore();
  const { cache: successes } = cache(store);
  await successes.record(verify('refnet', 5000));
  store.rows.splice(0, store.rows.length, verify('refnet', 4000));
  t.same(entries(await successes.read('backup.verify')), [['refnet', verify('refnet', 5000)]]);
});

t.test('a state database that fails: what was read last is served, logged once until it works again, and tried again after 30 s', async (t) => {
  const store = sharedStore();
  const { cache: successes, clock, log } = cache(store);
  store.rows.push(verify('refnet', 1000));
  await successes.read('backup.verify');
  store.failWith = new Error('state.postgres: reading the successes: connect ECONNREFUSED 127.0.0.1:5');
  for (const ms of [REFRESH_MS, REFRESH_MS + 1, 2 * REFRESH_MS]) {
    clock.ms = ms;
    t.same(entries(await successes.read('backup.verify')), [['refnet', verify('refnet', 1000)]], 'the last reading stands');
  }
  t.equal(store.reads, 3, 'one read per 30 s, not one per scrape');
  t.match(log.lines(), [{ level: 40, remediation: 'backup.verify', err: { message: 'state.postgres: reading the successes: connect ECONNREFUSED 127.0.0.1:5' },
    msg: 'cannot read the success records from the state database; the collectors report what this replica knows (backup verify times: its state.dir) until it can' }]);
  t.equal(log.lines().length, 1, 'once');
  store.failWith = null;
  clock.ms = 3 * REFRESH_MS;
  await successes.read('backup.verify');
  t.match(log.lines().slice(1), [{ level: 30, remediation: 'backup.verify', msg: 'the state database\'s success records are read again' }]);
  t.equal(log.lines().length, 2);
});

t.test('a record the store refuses is not kept here either: the caller learns it failed', async (t) => {
  const store = sharedStore();
  const { cache: successes } = cache(store);
  store.failWith = new Error('down');
  await t.rejects(successes.record(verify('refnet', 1000)), { message: 'down' });
  store.failWith = null;
  t.same(entries(await successes.read('backup.verify')), []);
});

t.test('a read that hangs holds a scrape for 2 s at most; later scrapes share the read in flight', async (t) => {
  const store = sharedStore();
  const { cache: successes } = cache(store);
  store.hang = true;
  const started = performance.now();
  t.same(entries(await successes.read('backup.verify')), []);
  const waited = performance.now() - started;
  t.ok(waited >= 1_900 && waited < 3_000, `waited ${Math.round(waited)} ms`);
  await successes.read('backup.verify');
  t.equal(store.reads, 1, 'one read in flight');
});
