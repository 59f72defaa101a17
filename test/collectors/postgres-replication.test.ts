import t from 'tap';
import { queryOnce, startPostgres } from '../fixtures/postgres.js';
import { startStandby } from '../fixtures/postgres-standby.js';
import { waitFor } from '../fixtures/ports.js';
import { testApp, valueOf, type Sample } from './helpers.js';

interface Standby {
  application_name: string;
  client_addr: string;
  state: string;
  sync_state: string;
  lag_seconds: number;
  lag_bytes: number;
  backend_xmin_age: number | null;
}

/**
 * A scrape and a read of pg_stat_replication that agree on the standby's lag. Both move when the
 * standby reports (every second here) or the primary writes WAL (its own housekeeping), so the
 * pair is taken again until neither moved in between, which takes a try or two.
 */
async function agreeing(scrape: () => Promise<Sample[]>, view: () => Promise<Standby[]>): Promise<{ samples: Sample[]; row: Standby | undefined }> {
  return waitFor('a scrape between two standby reports', async () => {
    const samples = await scrape();
    const [row] = await view();
    const labels = { target: 'primary', standby: 'replica1' };
    if (valueOf(samples, 'upkeep_postgres_replication_lag_seconds', labels) !== row?.lag_seconds
      || valueOf(samples, 'upkeep_postgres_replication_lag_bytes', labels) !== row?.lag_bytes) throw new Error('the lag moved in between');
    return { samples, row };
  }, 30_000, 50);
}

/** A primary (autovacuum off) and a real streaming standby of it on the replication slot `slot`, both gone at teardown. */
async function primaryAndStandby(t: { teardown(fn: () => unknown): void }, slot: string, name: string) {
  const primary = await startPostgres({ settings: { autovacuum: 'off' } });
  t.teardown(() => primary.destroy());
  await primary.query(`SELECT pg_create_physical_replication_slot('${slot}')`);
  const standby = await startStandby(primary, { slot, name });
  t.teardown(() => standby.destroy());
  return { primary, standby };
}

t.test('replication: a real streaming standby, seen from the primary and from itself', async (t) => {
  const { primary, standby } = await primaryAndStandby(t, 'replica_slot', 'replica1');
  await primary.query('CREATE TABLE items (id int); INSERT INTO items SELECT generate_series(1, 1000)');

  const primaryView = () => primary.query<Standby>(`SELECT application_name, host(client_addr) AS client_addr, state, sync_state,
    coalesce(extract(epoch FROM replay_lag), 0)::float8 AS lag_seconds,
    pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 AS lag_bytes, age(backend_xmin) AS backend_xmin_age FROM pg_stat_replication`);
  const slotXminAge = async () => (await primary.query<{ age: number | null }>("SELECT age(xmin) AS age FROM pg_replication_slots WHERE slot_name = 'replica_slot'"))[0]?.age;
  await waitFor('the standby streams, has replayed everything and reported its xmin', async () => {
    const [row] = await primaryView();
    if (row?.state !== 'streaming' || row.lag_bytes !== 0 || await slotXminAge() === null) throw new Error(JSON.stringify(row));
  }, 60_000, 200);

  const app = await testApp(t, [
    'targets:',
    '  postgres:',
    `    - { name: primary, url: "${primary.url()}", databases: [postgres] }`,
    `    - { name: standby, url: "${standby.url()}", databases: [postgres] }`,
  ].join('\n'));
  const scrape = async (): Promise<Sample[]> => (await app.scrape()).samples;

  t.test('caught up: the metrics equal pg_stat_replication and the standby\'s own view', async (t) => {
    const { samples, row } = await agreeing(scrape, primaryView);
    t.equal(valueOf(samples, 'upkeep_postgres_in_recovery', { target: 'primary' }), 0);
    t.equal(valueOf(samples, 'upkeep_postgres_in_recovery', { target: 'standby' }), 1);
    t.same(samples.filter((sample) => sample.name === 'upkeep_postgres_replication_info').map((sample) => sample.labels),
      [{ target: 'primary', standby: 'replica1', state: row?.state, sync_state: row?.sync_state, client_addr: row?.client_addr }], 'one standby, as pg_stat_replication names it');
    t.equal(row?.state, 'streaming');
    t.equal(valueOf(samples, 'upkeep_postgres_replication_lag_bytes', { standby: 'replica1' }), row?.lag_bytes, 'replayed everything: 0 bytes behind');
    const [own] = await standby.query<{ lag: number }>(`SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
      ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END::float8 AS lag`);
    t.equal(valueOf(samples, 'upkeep_postgres_standby_replay_lag_seconds', { target: 'standby' }), own?.lag, 'the standby\'s own view');
    t.equal(valueOf(samples, 'upkeep_postgres_standby_replay_lag_seconds', { target: 'primary' }), undefined, 'only a standby reports it');
    t.equal(valueOf(samples, 'upkeep_postgres_standby_streaming', { target: 'standby' }), 1, 'its WAL receiver streams');
    t.equal(valueOf(samples, 'upkeep_postgres_standby_streaming', { target: 'primary' }), undefined, 'only a standby has one');
    t.equal(valueOf(samples, 'upkeep_postgres_replication_lag_seconds', { target: 'standby' }), undefined, 'only a primary has standbys');
    t.ok((valueOf(samples, 'upkeep_postgres_wal_bytes_total', { target: 'primary' }) ?? 0) > 0);
    t.equal(valueOf(samples, 'upkeep_postgres_wal_bytes_total', { target: 'standby' }), undefined, 'a standby writes no WAL of its own');
    t.equal(valueOf(samples, 'upkeep_postgres_replication_slot_active', { target: 'primary', slot: 'replica_slot' }), 1, 'its slot is in use');
    // The standby's feedback (every second) may move the slot's xmin between a scrape and a query,
    // and between the scrape's own two readings of it (the slots and the horizon): compare a scrape
    // with the slot as it is just after it, once all three agree.
    const { slotAge, fresh } = await waitFor('a scrape and the slot to agree', async () => {
      const fresh = await scrape();
      const age = await slotXminAge();
      const seen = [valueOf(fresh, 'upkeep_postgres_replication_slot_xmin_age', { slot: 'replica_slot' }), valueOf(fresh, 'upkeep_postgres_oldest_xmin_age', { target: 'primary', holder: 'replication_slot' })];
      if (seen.some((value) => value !== age)) throw new Error(`the slot's xmin age is now ${age}, the scrape read ${seen.join(' and ')}`);
      return { slotAge: age, fresh };
    }, 30_000, 200);
    t.equal(valueOf(fresh, 'upkeep_postgres_replication_slot_xmin_age', { slot: 'replica_slot' }), slotAge, 'hot_standby_feedback puts the standby\'s xmin on its slot');
    t.equal(valueOf(fresh, 'upkeep_postgres_oldest_xmin_age', { target: 'primary', holder: 'replication_slot' }), slotAge, 'so the slot is what holds the horizon');
    t.equal(row?.backend_xmin_age, null, 'not the walsender: that is only where a standby streams without a slot');
    t.equal(valueOf(samples, 'upkeep_postgres_oldest_xmin_age', { target: 'primary', holder: 'standby' }), 0);
    t.equal(valueOf(samples, 'upkeep_postgres_up', { target: 'standby' }), 1, 'every other reading works on a standby');
    t.ok(valueOf(samples, 'upkeep_postgres_xid_age', { target: 'standby', database: 'postgres' }));
  });

  t.test('replay paused on the standby: both ends see it fall behind', async (t) => {
    await standby.query('SELECT pg_wal_replay_pause()');
    t.teardown(() => standby.query('SELECT pg_wal_replay_resume()'));
    // Replay pauses when it next has a record to apply; until then the pause is only requested.
    // A CI run saw the insert below replayed all the same: a WAL record first, and the pause seen.
    await primary.query("SELECT pg_logical_emit_message(false, 'upkeep-test', 'pause')");
    await waitFor('replay paused', async () => {
      const [row] = await standby.query<{ state: string }>('SELECT pg_get_wal_replay_pause_state() AS state');
      if (row?.state !== 'paused') throw new Error(`replay ${row?.state ?? 'unknown'}`);
    });
    await primary.query('INSERT INTO items SELECT generate_series(1, 10000)');
    const [written] = await primary.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    await waitFor('the standby received the insert', async () => {
      const [row] = await standby.query<{ received: boolean }>('SELECT pg_last_wal_receive_lsn() >= $1::pg_lsn AS received', [written?.lsn]);
      if (!row?.received) throw new Error('not yet');
    });
    const ownLag = () => standby.query<{ lag: number }>('SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS lag');
    const [before] = await ownLag();
    const { samples, row } = await agreeing(scrape, primaryView);
    const [after] = await ownLag();
    const lag = valueOf(samples, 'upkeep_postgres_standby_replay_lag_seconds', { target: 'standby' }) ?? -1;
    t.ok(before && after && lag >= before.lag && lag <= after.lag, `standby lag ${lag}s between the ${before?.lag}s and ${after?.lag}s it reported around the scrape`);
    t.ok((row?.lag_bytes ?? 0) > 0, 'the primary sees the standby behind');
    t.equal(valueOf(samples, 'upkeep_postgres_replication_lag_bytes', { standby: 'replica1' }), row?.lag_bytes, 'by the bytes pg_stat_replication says');
  });
});

t.test('a standby that has replayed no transaction since it started is not "caught up": its lag is at least the time since it started', async (t) => {
  // A helper's standby, restarted with recovery_min_apply_delay (or paused before its first commit),
  // read 0 while the primary was 26 MB ahead: pg_last_xact_replay_timestamp() is null until then.
  const { primary, standby } = await primaryAndStandby(t, 'fresh_slot', 'fresh');
  await standby.query('SELECT pg_wal_replay_pause()');
  await primary.query('CREATE TABLE items (id int); INSERT INTO items SELECT generate_series(1, 1000)');
  const [written] = await primary.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  await waitFor('the standby received it, replaying nothing', async () => {
    const [row] = await standby.query<{ received: boolean; replayed: string | null }>('SELECT pg_last_wal_receive_lsn() >= $1::pg_lsn AS received, pg_last_xact_replay_timestamp()::text AS replayed', [written?.lsn]);
    if (!row?.received) throw new Error('not yet');
    if (row.replayed !== null) throw new Error(`replayed a transaction at ${row.replayed}`);
  });
  const app = await testApp(t, `targets:\n  postgres:\n    - { name: standby, url: "${standby.url()}", databases: [postgres] }\n`);
  const sinceStart = async () => (await standby.query<{ seconds: number }>('SELECT extract(epoch FROM now() - pg_postmaster_start_time())::float8 AS seconds'))[0]?.seconds ?? -1;
  const before = await sinceStart();
  const lag = valueOf((await app.scrape()).samples, 'upkeep_postgres_standby_replay_lag_seconds', { target: 'standby' }) ?? -1;
  const after = await sinceStart();
  t.ok(lag > 0 && lag >= before && lag <= after, `lag ${lag}s: the time since the standby started (${before}s to ${after}s around the scrape), not 0`);
  await standby.query('SELECT pg_wal_replay_resume()');
});

t.test('a standby cut off from its primary says so: upkeep_postgres_standby_streaming 0 while the primary is down, 1 once it streams again', async (t) => {
  const { primary, standby } = await primaryAndStandby(t, 'cut_slot', 'cut');
  const app = await testApp(t, `targets:\n  postgres:\n    - { name: standby, url: "${standby.url()}", databases: [postgres] }\n`);
  const receiver = async () => (await standby.query<{ status: string }>('SELECT status FROM pg_stat_wal_receiver'))[0]?.status ?? 'none';
  const streaming = async () => valueOf((await app.scrape()).samples, 'upkeep_postgres_standby_streaming', { target: 'standby' });
  // Each figure read between two reads of pg_stat_wal_receiver that agree with it.
  const agreeing = (want: number) => waitFor(`streaming ${want}`, async () => {
    const before = await receiver();
    const seen = await streaming();
    const after = await receiver();
    const expected = before === 'streaming' ? 1 : 0;
    if (before !== after || seen !== expected || seen !== want) throw new Error(`receiver ${before} then ${after}, exported ${seen}`);
    return { seen, receiver: before };
  }, 30_000, 100);
  t.same(await agreeing(1), { seen: 1, receiver: 'streaming' }, 'streaming');
  await primary.stop('fast');
  const down = await agreeing(0);
  t.equal(down.seen, 0, `the primary down: 0, as pg_stat_wal_receiver says (${down.receiver})`);
  t.not(down.receiver, 'streaming');
  await primary.start();
  t.same(await agreeing(1), { seen: 1, receiver: 'streaming' }, 'streaming again once the primary is back');
});

t.test('no streaming figure where it would read 0 for good: for a role that cannot see the receiver, and on a standby without primary_conninfo', async (t) => {
  const { primary, standby } = await primaryAndStandby(t, 'quiet_slot', 'quiet');
  await primary.query('CREATE ROLE watcher LOGIN');
  await primary.query('CREATE ROLE stats_only LOGIN IN ROLE pg_read_all_stats');
  await waitFor('the roles on the standby', async () => {
    const [row] = await standby.query<{ roles: string }>("SELECT count(*)::text AS roles FROM pg_roles WHERE rolname IN ('watcher', 'stats_only')");
    if (row?.roles !== '2') throw new Error(`${row?.roles ?? 0} of 2 roles replayed`);
  }, 30_000, 100);
  const as = (role: string) => standby.url().replace('//postgres@', `//${role}@`);
  const app = await testApp(t, [
    'targets:',
    '  postgres:',
    `    - { name: standby, url: "${standby.url()}", databases: [postgres] }`,
    `    - { name: as_watcher, url: "${as('watcher')}", databases: [postgres] }`,
    `    - { name: as_stats_only, url: "${as('stats_only')}", databases: [postgres] }`,
    `    - { name: primary, url: "${primary.url()}", databases: [postgres] }`,
    `    - { name: primary_as_watcher, url: "${primary.url().replace('//postgres@', '//watcher@')}", databases: [postgres] }`,
    '',
  ].join('\n'));
  const streaming = async (target: string) => valueOf((await app.scrape()).samples, 'upkeep_postgres_standby_streaming', { target });
  await waitFor('streaming', async () => {
    if (await streaming('standby') !== 1) throw new Error('not streaming yet');
  }, 30_000, 100);
  const [hidden] = await queryOnce<Record<string, string>>(as('stats_only'), "SELECT count(*)::text AS shown FROM pg_settings WHERE name = 'primary_conninfo'");
  t.equal(hidden?.shown, '0', 'pg_settings hides primary_conninfo from a role without pg_read_all_settings');
  t.equal(await streaming('as_stats_only'), 1, 'it streams as that role sees it: primary_conninfo hidden counts as set');
  const [blind] = await queryOnce<Record<string, string>>(as('watcher'), 'SELECT count(*)::text AS rows, count(status)::text AS statuses FROM pg_stat_wal_receiver');
  t.same(blind, { rows: '1', statuses: '0' }, 'a role without pg_read_all_stats sees the receiver but not its status');
  t.equal(await streaming('as_watcher'), undefined, 'so it has no figure (it read 0, and the alert fired, while the standby streamed)');
  t.equal(valueOf((await app.scrape()).samples, 'upkeep_postgres_in_recovery', { target: 'as_watcher' }), 1, 'the standby is still reported as one');
  // On the primary, pg_stat_replication shows such a role the standby's name and nothing else.
  const primaryView = (await app.scrape()).samples;
  t.equal(valueOf(primaryView, 'upkeep_postgres_replication_info', { target: 'primary', standby: 'quiet', state: 'streaming' }), 1, 'the superuser sees the standby streaming');
  t.ok(valueOf(primaryView, 'upkeep_postgres_replication_lag_bytes', { target: 'primary', standby: 'quiet' }) !== undefined);
  for (const family of ['upkeep_postgres_replication_info', 'upkeep_postgres_replication_lag_seconds', 'upkeep_postgres_replication_lag_bytes']) {
    t.same(primaryView.filter((sample) => sample.name === family && sample.labels.target === 'primary_as_watcher'), [], `${family}: none for the role that cannot see it (the lag read 0, the state "")`);
  }

  await standby.query("ALTER SYSTEM SET primary_conninfo = ''");
  await standby.query('SELECT pg_reload_conf()');
  await waitFor('the receiver gone', async () => {
    const rows = await standby.query('SELECT 1 FROM pg_stat_wal_receiver');
    if (rows.length > 0) throw new Error('the WAL receiver still runs');
  }, 30_000, 100);
  t.equal(await streaming('standby'), undefined, 'a standby that recovers from the archive only has no figure');
  t.equal(valueOf((await app.scrape()).samples, 'upkeep_postgres_in_recovery', { target: 'standby' }), 1, 'and is still a standby');
});
