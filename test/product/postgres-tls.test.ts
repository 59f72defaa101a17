import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { z } from 'zod';
import { startTlsPostgres } from '../fixtures/tls.js';
import { serveInstalled, writeConfig } from './installed.js';

/**
 * A PostgreSQL with ssl=on and a certificate from its own CA, as production servers run, and
 * URLs as users copy them from psql. Before, pg took sslmode=require as verify-full: the
 * collectors' sessions were refused ("self-signed certificate in certificate chain") while
 * pg_dump, given the same URL, connected; and pg wrote a deprecation warning to stderr, a line
 * that is not JSON at the default log level.
 */
const finished = z.object({ status: z.string(), error: z.string().optional() });

t.test('the installed serve against a PostgreSQL with TLS: each sslmode as libpq reads it, for the collectors and pg_dump alike', async (t) => {
  const { server, files } = await startTlsPostgres(t);
  await server.query('create database app');
  await server.query('create table orders (id int)', [], 'app');
  const url = (query: string) => `${server.url('app')}?${query}`;
  const backups = await mkdtemp(join(tmpdir(), 'upkeep-tls-backups-'));
  t.teardown(() => rm(backups, { recursive: true, force: true }));
  const { file } = await writeConfig(t, {
    targets: {
      postgres: [
        { name: 'require', url: url('sslmode=require'), databases: ['app'] },
        { name: 'verified', url: url(`sslmode=verify-full&sslrootcert=${files.ca}`), databases: ['app'] },
        { name: 'wrong_ca', url: url(`sslmode=verify-ca&sslrootcert=${files.otherCa}`), databases: ['app'] },
      ],
      backups: [{ name: 'app', dir: backups, pattern: 'app_*.sql.gz', keepDays: 7, source: { target: 'require', database: 'app' } }],
    },
  });
  // As a unit file might set it for psql's sake: said to be ignored, once, at start.
  const served = await serveInstalled(t, file, { env: { PGSSLMODE: 'verify-full' } });
  const metrics = await (await fetch(`${served.base}/metrics`)).text();
  const up = (target: string) => new RegExp(`^upkeep_postgres_up\\{target="${target}"\\} (\\d)$`, 'm').exec(metrics)?.[1];
  t.equal(up('require'), '1', 'sslmode=require: encrypted, the certificate not checked (it was refused)');
  t.equal(up('verified'), '1', 'sslmode=verify-full with the CA: the chain and the address checked');
  t.equal(up('wrong_ca'), '0', 'sslmode=verify-ca with another CA: refused');
  const [sessions] = await server.query<{ tls: string; total: string }>(
    "SELECT count(*) FILTER (WHERE s.ssl)::text AS tls, count(*)::text AS total FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'upkeep'");
  t.ok(Number(sessions?.total) > 0, 'the collectors\' sessions are open');
  t.equal(sessions?.tls, sessions?.total, 'and every one is encrypted');
  const [refused] = await served.logged('the refused target', (line) => JSON.stringify(line).includes('wrong_ca') && /certificate/.test(JSON.stringify(line)));
  t.ok(refused, 'the log says the certificate was refused');

  const response = await fetch(`${served.base}/remediations/backup.pg_dump?wait=true`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ params: { backup: 'app' } }),
  });
  t.match(finished.parse(await response.json()), { status: 'success' }, 'pg_dump took the same URL');
  t.match(served.logLines().filter((line) => typeof line.msg === 'string' && line.msg.startsWith('PGSSLMODE')), [
    { level: 40, PGSSLMODE: 'verify-full', msg: 'PGSSLMODE is not read: put sslmode in each PostgreSQL URL (docs/configuration.md, "TLS to PostgreSQL")' },
  ]);
  t.equal(await served.stop(), 0);
  t.same(served.logLines().filter((line) => 'notJson' in line), [], 'every line is JSON: no warning from the driver on stderr');
  t.notMatch(served.output(), /SECURITY WARNING|DeprecationWarning/);
});
