import { execFile } from 'node:child_process';
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type pg from 'pg';
import { postgresDriver } from '../../lazy.js';
import { freePort, waitFor } from './ports.js';

const run = promisify(execFile);
export const PG_BIN = '/usr/lib/postgresql/15/bin';

export interface PostgresServer {
  port: number;
  dataDir: string;
  logFile: string;
  /** A connection URL for the database (default "postgres"). */
  url(database?: string): string;
  /** Runs SQL on a short-lived connection and returns the rows. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[], database?: string): Promise<R[]>;
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and deletes its data directory. */
  destroy(): Promise<void>;
}

export interface PostgresOptions {
  /** Extra postgresql.conf settings, e.g. { shared_preload_libraries: 'pg_stat_statements' }. */
  settings?: Record<string, string>;
  /**
   * Roles that must log in over 127.0.0.1 with a password (scram-sha-256), as on a real server;
   * every other connection keeps trust auth. The caller creates the roles (`create role ... password`).
   */
  passwordRoles?: readonly string[];
  /**
   * A data directory `initdb` made (see `initdb` below) and that never ran, copied instead of
   * running initdb again: the tests keep one, since initdb costs about a second of CPU a server.
   */
  copyOf?: string;
}

// initdb refuses to run as root, so as root the cluster belongs to the postgres user.
const asRoot = userInfo().uid === 0;

/** pg_hba.conf: password roles first (the first matching line wins), then trust for everyone else. */
async function writeHba(root: string, passwordRoles: readonly string[]): Promise<string> {
  const file = join(root, 'pg_hba.conf');
  const lines = [
    ...passwordRoles.map((role) => `host all ${JSON.stringify(role)} 127.0.0.1/32 scram-sha-256`),
    'local all all trust',
    'host all all 127.0.0.1/32 trust',
  ];
  await writeFile(file, `${lines.join('\n')}\n`, { mode: 0o644 });
  return file;
}

/** Makes a new cluster in `dataDir` the way every server here starts: trust auth, user postgres, UTF8, C locale. */
export async function initdb(dataDir: string): Promise<void> {
  await runPg('initdb', ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C']);
}

/** Runs a PostgreSQL binary, as the postgres user when this process is root; its stdout. */
export async function runPg(binary: string, args: string[]): Promise<string> {
  const command = asRoot ? 'runuser' : join(PG_BIN, binary);
  const fullArgs = asRoot ? ['-u', 'postgres', '--', join(PG_BIN, binary), ...args] : args;
  const { stdout } = await run(command, fullArgs, { maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

/** A temporary directory for a cluster, owned by the postgres user when this process is root. */
export async function clusterRoot(prefix: string): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), prefix));
  if (asRoot) {
    const { stdout: uid } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    await chown(root, Number(uid.trim()), Number(gid.trim()));
  }
  await chmod(root, 0o755);
  return root;
}

/** One query on a session of its own, closed after it. */
export async function queryOnce<R extends pg.QueryResultRow = pg.QueryResultRow>(url: string, sql: string, params?: unknown[]): Promise<R[]> {
  const client = new (postgresDriver().Client)({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

/**
 * A throwaway PostgreSQL 15 (used by the demo and the tests) on 127.0.0.1 and a free port, with
 * trust auth for user postgres (and password auth for `passwordRoles`).
 */
export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresServer> {
  const root = await clusterRoot('upkeep-pg-');
  const dataDir = join(root, 'data');
  const logFile = join(root, 'server.log');
  // cp -a keeps the owner and modes PostgreSQL checks (the postgres user's, 0700).
  if (options.copyOf) await run('cp', ['-a', '--', options.copyOf, dataDir]);
  else await initdb(dataDir);
  const port = await freePort();
  const settings: Record<string, string> = {
    listen_addresses: "'127.0.0.1'",
    port: String(port),
    unix_socket_directories: `'${root}'`,
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    max_connections: '200',
    ...(options.passwordRoles?.length ? { hba_file: `'${await writeHba(root, options.passwordRoles)}'` } : {}),
    ...options.settings,
  };
  const opts = Object.entries(settings).map(([key, value]) => `-c ${key}=${value}`).join(' ');
  const server: PostgresServer = {
    port,
    dataDir,
    logFile,
    url: (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`,
    query: <R extends pg.QueryResultRow>(sql: string, params?: unknown[], database?: string) => queryOnce<R>(server.url(database), sql, params),
    async start() {
      await runPg('pg_ctl', ['-D', dataDir, '-l', logFile, '-o', opts, '-w', '-t', '60', 'start']);
      await waitFor('postgres', () => server.query('select 1'));
    },
    async stop(mode = 'fast') {
      await runPg('pg_ctl', ['-D', dataDir, '-m', mode, '-w', 'stop']);
    },
    async destroy() {
      await server.stop('immediate').catch(() => undefined);
      await rm(root, { recursive: true, force: true });
    },
  };
  await server.start();
  return server;
}
