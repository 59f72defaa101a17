import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import t, { type Test } from 'tap';
import { CLOCK_SKEW_SECONDS, listBackups, newestValidBackup } from '../../../src/systems/files/backups.js';

const DAY = 86400;

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'upkeep-backups-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function file(dir: string, name: string, content: Buffer, mtime: number): Promise<void> {
  await writeFile(join(dir, name), content);
  await utimes(join(dir, name), mtime, mtime);
}

const dump = gzipSync('CREATE TABLE t ();\n-- PostgreSQL database dump complete\n');
// Starts with the gzip magic, so the cheap check passes it, but it stops after ten bytes.
const truncated = dump.subarray(0, 10);

t.test('a backup dated beyond the clock-skew allowance is listed but never the newest valid backup', async (t) => {
  const dir = await tempDir(t);
  const now = Math.floor(Date.now() / 1000);
  await file(dir, 'app_20260101_020000.sql.gz', dump, now - 2 * DAY);
  await file(dir, 'app_20260102_020000.sql.gz', dump, now - 3600);
  // The tester's file: touch -d 2099-12-31 on a truncated dump.
  const future = Date.UTC(2099, 11, 31) / 1000;
  await file(dir, 'app_20991231_000000.sql.gz', truncated, future);

  const files = await listBackups(dir, 'app_*.sql.gz');
  t.same(files.map((f) => f.name), ['app_20991231_000000.sql.gz', 'app_20260102_020000.sql.gz', 'app_20260101_020000.sql.gz'], 'still a file matching the pattern, newest first');
  const newest = await newestValidBackup(files);
  t.equal(newest?.name, 'app_20260102_020000.sql.gz', 'the real newest, not the one dated 2099');
  t.equal(newest?.mtimeSeconds, now - 3600);
  t.equal(newest?.sizeBytes, dump.length);
});

t.test('the allowance: up to 5 minutes ahead of now counts, a second more does not', async (t) => {
  const dir = await tempDir(t);
  const now = 1_800_000_000;
  t.equal(CLOCK_SKEW_SECONDS, 300);
  await file(dir, 'app_1.sql.gz', dump, now - DAY);
  await file(dir, 'app_2.sql.gz', dump, now + CLOCK_SKEW_SECONDS);
  const skewed = await listBackups(dir, 'app_*.sql.gz');
  t.equal((await newestValidBackup(skewed, now))?.name, 'app_2.sql.gz', 'a dump from a host whose clock runs a little ahead');
  await utimes(join(dir, 'app_2.sql.gz'), now + CLOCK_SKEW_SECONDS + 1, now + CLOCK_SKEW_SECONDS + 1);
  const ahead = await listBackups(dir, 'app_*.sql.gz');
  t.equal((await newestValidBackup(ahead, now))?.name, 'app_1.sql.gz');
  t.equal(await newestValidBackup(ahead.filter((f) => f.name === 'app_2.sql.gz'), now), null, 'only a future file: no valid backup at all');
});
