import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { countRows, type TableCount } from '../../src/actions/backup-verify.js';
import type { PostgresServer } from '../fixtures/postgres.js';

// About this many bytes per row of the big table on disk (tuple header, id, timestamp, ~130 chars).
const BYTES_PER_ROW = 200;

/**
 * A database shaped like an application's: one big table of about sizeMb, plus a mixed-case name,
 * a second schema, an empty table and a partitioned table, so restores are checked on all of them.
 */
export async function makeDatabase(server: PostgresServer, database: string, sizeMb: number): Promise<void> {
  await server.query(`create database ${database}`);
  const rows = Math.round((sizeMb * 1024 * 1024) / BYTES_PER_ROW);
  const statements = [
    'create table events (id bigint primary key, created_at timestamptz not null, payload text not null)',
    // Slices of 100k rows keep each statement short and the server's memory flat.
    ...Array.from({ length: Math.ceil(rows / 100_000) }, (_, slice) => {
      const from = slice * 100_000 + 1;
      const to = Math.min(rows, (slice + 1) * 100_000);
      return `insert into events select g, now() - g * interval '1 second', md5(g::text) || repeat('x', 60) || md5((g * 7)::text) from generate_series(${from}, ${to}) g`;
    }),
    'create table "Mixed Case" (id int, note text)',
    `insert into "Mixed Case" select g, 'note ' || g from generate_series(1, 1000) g`,
    'create schema app',
    'create table app.small (id int primary key, name text)',
    `insert into app.small select g, 'name ' || g from generate_series(1, 10) g`,
    'create table empty_table (id int)',
    'create table parted (id int, k int) partition by range (k)',
    'create table parted_low partition of parted for values from (0) to (50)',
    'create table parted_high partition of parted for values from (50) to (100)',
    'insert into parted select g, g % 100 from generate_series(1, 5000) g',
    'analyze',
  ];
  const client = new pg.Client({ connectionString: server.url(database) });
  await client.connect();
  try {
    for (const statement of statements) await client.query(statement);
  } finally {
    await client.end();
  }
}

/**
 * A database as production has it: owned by an application role, with grants to another role,
 * default privileges, a function, and the trusted contrib extensions citext and pgcrypto. upkeep
 * reaches it as `role`, which logs in with `password` and holds only what docs/security.md asks
 * for backup.pg_dump and backup.verify: pg_read_all_data and CREATEDB. The server must list `role`
 * in passwordRoles.
 */
export async function makeOwnedDatabase(server: PostgresServer, database: string, role: string, password: string, rows: number): Promise<void> {
  await server.query(`create role ${role} login createdb password '${password}' in role pg_read_all_data`);
  await server.query('create role app_owner login');
  await server.query('create role reporting');
  await server.query(`create database ${database} owner app_owner`);
  await server.query(`create extension citext; create extension pgcrypto;
    create schema app authorization app_owner;
    set role app_owner;
    create table app.users (id int primary key, email citext not null, digest bytea not null);
    insert into app.users select g, 'User' || g || '@Example.com', digest(g::text, 'sha256') from generate_series(1, ${rows}) g;
    create function app.user_count() returns bigint language plpgsql as $$ begin return (select count(*) from app.users); end $$;
    grant select on app.users to reporting;
    alter default privileges grant select on tables to reporting;
    reset role;`, [], database);
}

export async function tableCounts(url: string): Promise<TableCount[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await countRows(client);
  } finally {
    await client.end();
  }
}

/** Restores a .sql.gz with the stock tools (gunzip | psql), independently of backup.verify. */
export function restoreWithPsql(file: string, url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-o', 'pipefail', '-c', `gunzip -c '${file}' | psql -X -q -v ON_ERROR_STOP=1 -d '${url}' > /dev/null`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`restore failed (${code}): ${stderr}`))));
  });
}

// The directories writeConfigFile made, removed when the test file's process exits: its callers
// pass the file on to commands and child processes, and have no cleanup of their own to call.
const configDirs = new Set<string>();

export async function writeConfigFile(config: Record<string, unknown>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'upkeep-config-'));
  if (configDirs.size === 0) process.once('exit', () => { for (const made of configDirs) rmSync(made, { recursive: true, force: true }); });
  configDirs.add(dir);
  const file = join(dir, 'upkeep.yaml');
  await writeFile(file, stringify(config));
  return file;
}

/** Peak VmRSS (bytes) of a process, sampled from /proc until it exits. */
export function sampleRss(pid: number, everyMs = 50): { peak: () => number; stop: () => void } {
  let peak = 0;
  const timer = setInterval(() => {
    readFile(`/proc/${pid}/status`, 'utf8').then((status) => {
      const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
      peak = Math.max(peak, kb * 1024);
    }, () => undefined);
  }, everyMs);
  return { peak: () => peak, stop: () => clearInterval(timer) };
}
