import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { DOCKER_SOCKET, ensureDocker } from '../fixtures/docker.js';
import { startPostgres } from '../fixtures/postgres.js';
import { startRedis } from '../fixtures/redis.js';
import { promtoolCheckMetrics } from '../fixtures/promtool.js';
import { testApp, valueOf } from './helpers.js';


t.test('promtool check metrics finds nothing with every collector on', async (t) => {
  await ensureDocker();
  const postgres = await startPostgres({ settings: { shared_preload_libraries: 'pg_stat_statements' } });
  t.teardown(() => postgres.destroy());
  await postgres.query('CREATE EXTENSION pg_stat_statements');
  await postgres.query('CREATE TABLE jobs (id int); INSERT INTO jobs SELECT generate_series(1, 100); DELETE FROM jobs WHERE id < 50');
  await postgres.query('VACUUM jobs');
  const redis = await startRedis();
  t.teardown(() => redis.destroy());
  const dir = await mkdtemp(join(tmpdir(), 'upkeep-promtool-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'refnet_20260101_020000.sql.gz'), 'backup');
  await writeFile(join(dir, 'app.log'), 'line\n');
  const health = createServer((_request, response) => response.end('ok'));
  health.listen(0, '127.0.0.1');
  await once(health, 'listening');
  t.teardown(() => health.close());
  const address = health.address();
  const port = typeof address === 'object' && address ? address.port : 0;

  const app = await testApp(t, `
targets:
  postgres: [{ name: main, url: "${postgres.url()}", databases: auto, statements: { enabled: true } }]
  redis: [{ name: cache, url: "${redis.url}", keyPatterns: ["celery-task-meta-*"] }]
  docker: [{ name: local, socketPath: ${DOCKER_SOCKET} }]
  disks: [{ path: / }]
  backups: [{ name: refnet, dir: ${dir}, pattern: "refnet_*.sql.gz" }]
  logs: [{ name: app, dir: ${dir}, pattern: "*.log" }]
  http: [{ name: health, url: "http://127.0.0.1:${port}/" }]
`);
  const { status, text, samples } = await app.scrape();
  t.equal(status, 200);
  const collectors = samples.filter((sample) => sample.name === 'upkeep_collector_up');
  t.same(collectors.map((sample) => sample.labels.collector).sort(), ['backups', 'disks', 'docker', 'http', 'logs', 'postgres', 'redis']);
  t.same(collectors.filter((sample) => sample.value !== 1), [], 'every collector succeeded, so every family is in the output');
  t.ok(valueOf(samples, 'upkeep_postgres_statement_calls_total') !== undefined, 'statement counters are in the output');
  t.ok(valueOf(samples, 'upkeep_postgres_last_vacuum_timestamp_seconds') !== undefined);
  const { code, output } = await promtoolCheckMetrics(text);
  t.equal(output, '', 'no findings');
  t.equal(code, 0);
});
