import { copyFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import t from 'tap';
import { StateDb } from '../../../src/engine/state/postgres-db.js';
import { errorMessage } from '../../../src/log.js';
import { connectClient, createPool, endPool } from '../../../src/systems/postgres/client.js';
import { pgConnection, sslProblem } from '../../../src/systems/postgres/tls.js';
import { startPostgres } from '../../fixtures/postgres.js';
import { startTlsPostgres } from '../../fixtures/tls.js';

t.test('pgConnection: the URL pg parses carries no TLS parameter; the options say what libpq would do', async (t) => {
  t.same(pgConnection('postgres://u@h:5432/app'), { connectionString: 'postgres://u@h:5432/app', ssl: false }, 'no sslmode: no TLS');
  t.same(pgConnection('postgres://u@h/app?sslmode=disable&application_name=x'), { connectionString: 'postgres://u@h/app?application_name=x', ssl: false });
  t.same(pgConnection('postgres://u@h/app?sslmode=prefer'), { connectionString: 'postgres://u@h/app', ssl: { rejectUnauthorized: false } }, 'prefer: TLS, as libpq when the server has it');
  t.same(pgConnection('postgres://u@h/app?sslmode=allow'), { connectionString: 'postgres://u@h/app', ssl: false });
  t.same(pgConnection('postgres://u@h/app?sslmode=require'), { connectionString: 'postgres://u@h/app', ssl: { rejectUnauthorized: false } });
  t.same(pgConnection('postgres://u@db.example:5433/app?sslmode=verify-full'), { connectionString: 'postgres://u@db.example:5433/app', ssl: {} }, 'verify-full: pg checks the host it connects to');
  t.throws(() => pgConnection('postgres://u@h/app?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem'), { message: 'sslrootcert /nonexistent/ca.pem: cannot read it (ENOENT)' });
  t.same(pgConnection('postgres://u@h/app?sslmode=require&sslpassword=x').connectionString, 'postgres://u@h/app', 'sslpassword is dropped, as for pg_dump');
  t.same(pgConnection('postgres://u@h/app?options=-c%20a%3D1'), { connectionString: 'postgres://u@h/app?options=-c%20a%3D1', ssl: false }, 'a URL without TLS parameters goes as written');
  t.same(pgConnection('postgres:///app?host=/run/postgresql&sslmode=require'), { connectionString: 'postgres:///app?host=%2Frun%2Fpostgresql', ssl: false }, 'a Unix socket: no TLS, as libpq');
  t.same(pgConnection('postgres://u@%2Frun%2Fpostgresql/app?sslmode=verify-full').ssl, false, 'the socket as the host, too');
  t.match(pgConnection('postgres://u@h/app?sslmode=prefer&sslrootcert=/etc/ssl/certs/ca-certificates.crt').ssl, { rejectUnauthorized: false, ca: /BEGIN CERTIFICATE/ }, 'prefer checks nothing, even with a CA (libpq\'s rule: only require turns into verify-ca)');
});

t.test('sslProblem: what check-config says of a URL\'s TLS parameters', async (t) => {
  t.equal(sslProblem('postgres://u@h/app'), null);
  t.equal(sslProblem('postgres://u@h/app?sslmode=verify-full&sslrootcert=/etc/ssl/certs/ca-certificates.crt'), null);
  t.equal(sslProblem('postgres://u@h/app?sslmode=verify-full'), 'sslmode=verify-full needs sslrootcert (the CA file the server\'s certificate is checked against)', 'libpq 15 knows no system CAs');
  t.equal(sslProblem('postgres://u@h/app?sslnegotiation=direct'), '"sslnegotiation" is not supported by upkeep (nor by libpq 15\'s pg_dump); leave it out');
  t.equal(sslProblem('postgres://u@h/app?sslmode=required'), 'sslmode "required" is not one of disable, allow, prefer, require, verify-ca, verify-full');
  t.equal(sslProblem('postgres://u@h/app?sslmode=verify-ca'), 'sslmode=verify-ca needs sslrootcert (the CA file the server\'s certificate is checked against)');
  t.equal(sslProblem('postgres://u@h/app?ssl=true'), '"ssl" is not a libpq parameter (pg_dump and psql refuse it); set sslmode (disable, require, verify-ca, verify-full)');
});

t.test('a PostgreSQL with TLS: each sslmode connects or is refused as libpq would, with no warning', async (t) => {
  const { server, files } = await startTlsPostgres(t);
  const warnings: string[] = [];
  const onWarning = (warning: Error) => { warnings.push(warning.message); };
  process.on('warning', onWarning);
  t.teardown(() => { process.off('warning', onWarning); });
  const encryptedAt = async (url: string): Promise<boolean> => {
    const client = await connectClient(url, 'upkeep-test');
    try {
      const { rows: [row] } = await client.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
      return row?.ssl === true;
    } finally {
      await client.end();
    }
  };
  const encrypted = (query: string) => encryptedAt(`${server.url()}?${query}`);
  t.equal(await encrypted('sslmode=require'), true, 'require: encrypted, the certificate not checked');
  t.equal(await encrypted(`sslmode=verify-ca&sslrootcert=${files.ca}`), true, 'verify-ca: the chain checked');
  t.equal(await encrypted(`sslmode=verify-full&sslrootcert=${files.ca}`), true, 'verify-full: the chain and the address (127.0.0.1 in the certificate)');
  t.equal(await encrypted('sslmode=disable'), false, 'disable: plain');
  t.equal(await encrypted('sslmode=prefer'), true, 'prefer: encrypted where the server offers TLS, as libpq');
  t.equal(await encrypted('sslmode=allow'), false, 'allow: plain where the server takes it, as libpq');
  t.equal(await encrypted('application_name=x'), false, 'no sslmode: plain, as before');
  await t.rejects(encrypted(`sslmode=verify-ca&sslrootcert=${files.otherCa}`), /certificate/, 'verify-ca with another CA: refused');
  await t.rejects(encrypted(`sslmode=require&sslrootcert=${files.otherCa}`), /certificate/, 'require with sslrootcert is verify-ca, as in libpq');
  await t.rejects(encrypted('sslmode=verify-full'), /certificate/, 'verify-full without sslrootcert: the system CAs do not know this one');
  t.equal(await encryptedAt(`postgres:///postgres?host=${dirname(server.dataDir)}&port=${server.port}&user=postgres&sslmode=require`), false, 'over the Unix socket, require connects without TLS, as libpq does');
  const asCertUser = `postgres://cert_user@127.0.0.1:${server.port}/postgres?sslmode=verify-full&sslrootcert=${files.ca}`;
  t.equal(await encryptedAt(`${asCertUser}&sslcert=${files.clientCert}&sslkey=${files.clientKey}`), true, 'a client certificate: the role that logs in only with one');
  await t.rejects(encryptedAt(asCertUser), /certificate/, 'without it, refused');
  const pool = createPool({ url: `${server.url()}?sslmode=require`, max: 1, idleCloseMs: 1000, timeoutSeconds: 5, applicationName: 'upkeep-test' });
  t.teardown(() => endPool(pool));
  const { rows: [pooled] } = await pool.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
  t.equal(pooled?.ssl, true, 'a pool\'s sessions too');
  // The files are read at each connection, as libpq reads them: a CA (or client certificate)
  // renewed on disk reaches the next session of a pool made before, without a restart.
  const rotated = join(dirname(files.ca), 'rotated-ca.pem');
  await copyFile(files.otherCa, rotated);
  const rotating = createPool({ url: `${server.url()}?sslmode=verify-ca&sslrootcert=${rotated}`, max: 1, idleCloseMs: 1000, timeoutSeconds: 5, applicationName: 'upkeep-test' });
  t.teardown(() => endPool(rotating));
  await t.rejects(rotating.query('SELECT 1'), /certificate/, 'the wrong CA in the file: refused');
  await copyFile(files.ca, rotated);
  t.same((await rotating.query<{ one: number }>('SELECT 1 AS one')).rows, [{ one: 1 }], 'the right CA written over it: the same pool connects');
  const [before] = (await rotating.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows;
  (await rotating.connect()).release(true); // its session closed: the next query opens another
  await rm(rotated);
  const [after] = (await rotating.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows;
  t.not(after?.pid, before?.pid, 'the file gone, a new session still connects: the last content read is kept');
  const state = new StateDb({ url: `${server.url()}?sslmode=require`, schema: 'upkeep', timeoutMs: 5000 });
  t.teardown(() => state.pool.end());
  const { rows: [stored] } = await state.pool.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
  t.equal(stored?.ssl, true, 'and the state store\'s');
  t.same(warnings, [], 'the driver warned of nothing (it warned of sslmode=require on every connection)');
});

t.test('sslmode=prefer on a server without TLS: refused, saying so and how to connect without it (libpq would fall back)', async (t) => {
  const server = await startPostgres();
  t.teardown(() => server.destroy());
  const err = await connectClient(`${server.url()}?sslmode=prefer`, 'upkeep-test').then(() => null, (failure: unknown) => failure);
  t.equal(errorMessage(err), 'the server does not support SSL connections: the URL\'s sslmode asks for TLS (libpq\'s prefer falls back to none, upkeep\'s does not); set sslmode=disable to connect without it');
});
