import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ioredis, nodeZlib, postgresDriver } from '../lazy.js';
import { fillKeys } from './servers/redis.js';

/**
 * The problems the runbooks fight, made for real on throwaway servers: each returns what it
 * did so the demo (and the end-to-end test) can show the before and after.
 */

/** A table with many dead tuples that autovacuum will not touch on its own. */
export async function makeDeadTuples(url: string, table: string, rows: number, deleted: number): Promise<void> {
  const client = new (postgresDriver().Client)({ connectionString: url });
  await client.connect();
  try {
    await client.query(`CREATE TABLE ${table} (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now(), payload text) WITH (autovacuum_enabled = false)`);
    await client.query(`INSERT INTO ${table} (payload) SELECT md5(i::text) FROM generate_series(1, $1) AS i`, [rows]);
    await client.query(`DELETE FROM ${table} WHERE id <= $1`, [deleted]);
    // Statistics reach pg_stat_user_tables asynchronously; flush them so the first scrape sees the dead tuples.
    await client.query('SELECT pg_stat_force_next_flush()');
  } finally {
    await client.end();
  }
}

/** A backup directory whose newest valid dump is `ageHours` old. */
export async function makeStaleBackup(dir: string, name: string, ageHours: number): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${name}_20260101_020000.sql.gz`);
  await writeFile(file, nodeZlib().gzipSync('-- an old dump\n'));
  const mtime = Date.now() / 1000 - ageHours * 3600;
  await utimes(file, mtime, mtime);
  return file;
}

/** Celery result keys piling up with no TTL, the runbook's daily 04:00 cleanup. */
export async function makeCeleryBacklog(url: string, count: number): Promise<void> {
  const client = new (ioredis().Redis)(url);
  try {
    await fillKeys(client, 'celery-task-meta-', count, { value: '{"status":"SUCCESS"}' });
  } finally {
    client.disconnect();
  }
}

/**
 * A failed BGSAVE: point the save directory at /proc (unwritable even for root), save, and
 * point it back, so Redis reports rdb_last_bgsave_status:err until the next good save.
 */
export async function makeFailedBgsave(url: string, goodDir: string): Promise<void> {
  const client = new (ioredis().Redis)(url);
  try {
    await client.config('SET', 'dir', '/proc');
    await client.bgsave();
    for (let i = 0; i < 100; i += 1) {
      const info = await client.info('persistence');
      if (info.includes('rdb_bgsave_in_progress:0') && info.includes('rdb_last_bgsave_status:err')) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await client.config('SET', 'dir', goodDir);
  } finally {
    client.disconnect();
  }
}

/** A big application log last written `ageDays` ago, which rotation should compress. */
export async function makeBigLog(dir: string, bytes: number, ageDays: number): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, 'app.log');
  const line = `${new Date().toISOString()} INFO request handled in 12ms path=/api/v1/items status=200\n`;
  await writeFile(file, line.repeat(Math.ceil(bytes / line.length)));
  const mtime = Date.now() / 1000 - ageDays * 86400;
  await utimes(file, mtime, mtime);
  return file;
}
