import pg from 'pg';
import t from 'tap';
import { z } from 'zod';
import { sampleValue } from '../../src/demo/report.js';
import { startRedis } from '../fixtures/redis.js';
import { startTestPostgres } from '../actions/postgres-fixture.js';
import { serveInstalled, writeConfig } from './installed.js';

// The installed `upkeep serve`, scraped over HTTP: the maintenance families of issue 11 (wraparound,
// the vacuum horizon, connections, slots, Redis clients, persistence and replication) carry what
// the servers themselves report.

const row = (rows: unknown) => z.tuple([z.record(z.string(), z.unknown())]).parse(rows)[0];

t.test('the installed upkeep exports the new PostgreSQL and Redis families with the servers\' own values', async (t) => {
  const postgres = await startTestPostgres(t, { autovacuum_freeze_max_age: '150000000' });
  await postgres.query('create database app');
  await postgres.query('create table orders (id int)', [], 'app');
  await postgres.query('create role report_job login');
  await postgres.query("select pg_create_physical_replication_slot('standby_slot', true)");
  const holder = new pg.Client({ connectionString: postgres.url('app').replace('postgres@', 'report_job@'), application_name: 'report-job' });
  await holder.connect();
  t.teardown(() => holder.end());
  await holder.query('begin');
  await holder.query('select txid_current()');
  const holderPid = z.number().parse(row((await holder.query('select pg_backend_pid() as pid')).rows).pid);

  const redis = await startRedis();
  t.teardown(() => redis.destroy());
  const admin = redis.client();
  t.teardown(() => admin.disconnect());
  await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
  await admin.config('SET', 'maxclients', '321');

  const { file } = await writeConfig(t, {
    collectors: { disabled: ['disks', 'backups', 'logs', 'http', 'docker'] },
    targets: { postgres: [{ name: 'main', url: postgres.url('app') }], redis: [{ name: 'cache', url: redis.url }] },
  });
  const served = await serveInstalled(t, file);
  const metrics = async () => (await fetch(`${served.base}/metrics`)).text();
  const text = await metrics();
  const value = (series: string) => {
    const found = sampleValue(text, series);
    t.not(found, undefined, `${series} is exported`);
    return found;
  };

  // Wraparound: PostgreSQL's own age() and mxid_age() (nothing assigns xids meanwhile but the holder, which already has its own).
  const ages = row(await postgres.query("select age(datfrozenxid)::int as xid, mxid_age(datminmxid)::int as mxid from pg_database where datname = 'app'"));
  t.equal(value('upkeep_postgres_xid_age{target="main",database="app"}'), ages.xid, 'xid_age');
  t.equal(value('upkeep_postgres_mxid_age{target="main",database="app"}'), ages.mxid, 'mxid_age');
  t.equal(value('upkeep_postgres_freeze_max_age{target="main"}'), 150_000_000, 'the autovacuum_freeze_max_age setting');
  // A table's: the first scrape reads them; later ones are served a reading kept up to 60 s, with its age.
  const orders = row(await postgres.query("select age(relfrozenxid)::int as age from pg_class where relname = 'orders'", [], 'app'));
  t.equal(value('upkeep_postgres_table_xid_age{target="main",database="app",schema="public",table="orders"}'), orders.age, 'table_xid_age');
  t.ok(Number(value('upkeep_collector_cache_age_seconds{collector="postgres",target="main",reading="xid_ages:app"}')) >= 0, 'with the reading\'s age');

  // The horizon: the idle session, named by pid, and the slot with the WAL it keeps.
  t.equal(value('upkeep_postgres_idle_in_transaction_sessions{target="main"}'), 1);
  t.ok(Number(value('upkeep_postgres_idle_in_transaction_oldest_seconds{target="main"}')) >= 0);
  t.equal(value(`upkeep_postgres_oldest_xmin_backend_info{target="main",pid="${holderPid}",database="app",user="report_job",state="idle in transaction",application_name="report-job",client_addr="127.0.0.1"}`), 1, 'the backend holding the horizon');
  t.ok(Number(value('upkeep_postgres_oldest_xmin_age{target="main",holder="backend"}')) >= 0);
  t.equal(value('upkeep_postgres_replication_slot_active{target="main",slot="standby_slot"}'), 0, 'the slot has no consumer');
  t.ok(Number(value('upkeep_postgres_replication_slot_retained_wal_bytes{target="main",slot="standby_slot"}')) > 0, 'and keeps WAL');

  // Connections and settings.
  const settings = row(await postgres.query("select current_setting('max_connections')::int as max, current_setting('autovacuum_max_workers')::int as workers"));
  t.equal(value('upkeep_postgres_max_connections{target="main"}'), settings.max);
  t.equal(value('upkeep_postgres_autovacuum_max_workers{target="main"}'), settings.workers);
  t.ok(Number(value('upkeep_postgres_connections{target="main",state="idle in transaction"}')) >= 1, 'the idle session counts');
  t.equal(value('upkeep_postgres_in_recovery{target="main"}'), 0, 'a primary');

  // Redis: settings and state as INFO and CONFIG GET report them.
  const info = Object.fromEntries(z.string().parse(await admin.info()).split('\r\n').filter((line) => line.includes(':'))
    .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1)]));
  t.equal(value('upkeep_redis_max_clients{target="cache"}'), 321, 'maxclients');
  t.equal(value('upkeep_redis_maxmemory_policy_info{target="cache",policy="allkeys-lru"}'), 1, 'maxmemory_policy');
  t.equal(value('upkeep_redis_aof_enabled{target="cache"}'), Number(info.aof_enabled));
  t.equal(value('upkeep_redis_replica{target="cache"}'), 0, 'role master');
  t.equal(value('upkeep_redis_connected_replicas{target="cache"}'), Number(info.connected_slaves));
  t.equal(value('upkeep_redis_evicted_keys_total{target="cache"}'), Number(info.evicted_keys));
  t.equal(value('upkeep_redis_rejected_connections_total{target="cache"}'), Number(info.rejected_connections));
  t.ok(Number(value('upkeep_redis_connected_clients{target="cache"}')) >= 1, 'at least our admin client');
  t.ok(Number(value('upkeep_redis_uptime_seconds{target="cache"}')) <= Number(info.uptime_in_seconds) + 1, 'uptime, a restart drops it');
});
