import { mkdtemp, rm, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import t, { type Test } from 'tap';
import { backups } from '../../src/collectors/backups.js';
import type { CollectorInstance } from '../../src/collectors/framework/types.js';
import { parseConfig } from '../../src/config/load.js';
import { bufferLogger, type BufferLogger } from '../fixtures/log.js';

const DAY = 86400;

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'upkeep-backups-collector-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function file(dir: string, name: string, content: Buffer, mtime: number): Promise<void> {
  await writeFile(join(dir, name), content);
  await utimes(join(dir, name), mtime, mtime);
}

function collector(t: Test, dir: string, logger: BufferLogger): CollectorInstance {
  const parsed = parseConfig(JSON.stringify({ state: { dir: join(dir, 'state') }, targets: { backups: [{ name: 'app', dir, pattern: 'app_*.sql.gz' }] } }), {});
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  const [instance] = backups.build({ config: parsed.config, log: logger.log });
  if (!instance) throw new Error('no collector for the backup');
  t.teardown(() => instance.close?.());
  return instance;
}

async function values(instance: CollectorInstance): Promise<Record<string, number>> {
  const { readings } = await instance.collect(new AbortController().signal);
  return Object.fromEntries(readings.map((reading) => [reading.family, reading.value]));
}

t.test('a corrupt backup dated 2099 is not the newest valid backup: the real one\'s time and size are exported, and it is logged once', async (t) => {
  const dir = await tempDir(t);
  const now = Math.floor(Date.now() / 1000);
  const dump = gzipSync('CREATE TABLE t ();\n-- PostgreSQL database dump complete\n');
  const truncated = dump.subarray(0, 10);
  await file(dir, 'app_20260101_020000.sql.gz', dump, now - 30 * 3600);
  // The tester's file: a truncated gzip, then touch -d 2099-12-31.
  const future = Date.UTC(2099, 11, 31) / 1000;
  await file(dir, 'app_20991231_000000.sql.gz', truncated, future);
  const logger = bufferLogger();
  const instance = collector(t, dir, logger);

  t.same(await values(instance), {
    upkeep_backup_dir_present: 1,
    upkeep_backup_files: 2,
    upkeep_backup_total_bytes: dump.length + truncated.length,
    upkeep_backup_last_success_timestamp_seconds: now - 30 * 3600,
    upkeep_backup_last_size_bytes: dump.length,
  }, 'the age is 30 hours, so BackupTooOld can fire; the future file is still a file matching the pattern');
  await values(instance);
  const logged = () => logger.lines().map(({ level, msg, backup, file, mtimeSeconds }) => ({ level, msg, backup, file, mtimeSeconds }));
  const warning = { level: 40, msg: 'backup file modified more than 300 s in the future; not taken for the newest valid backup', backup: 'app', file: 'app_20991231_000000.sql.gz', mtimeSeconds: future };
  t.same(logged(), [warning], 'once, not at every scrape');

  await unlink(join(dir, 'app_20991231_000000.sql.gz'));
  await values(instance);
  await file(dir, 'app_20991231_000000.sql.gz', truncated, future);
  t.same((await values(instance)).upkeep_backup_last_success_timestamp_seconds, now - 30 * 3600);
  t.same(logged(), [warning, warning], 'logged again when it comes back after it was gone');
});

t.test('a backup a little ahead (clock skew) is still the newest, and nothing is logged', async (t) => {
  const dir = await tempDir(t);
  const now = Math.floor(Date.now() / 1000);
  const dump = gzipSync('CREATE TABLE t ();\n');
  await file(dir, 'app_20260101_020000.sql.gz', dump, now - DAY);
  await file(dir, 'app_20260102_020000.sql.gz', dump, now + 60);
  const logger = bufferLogger();
  t.equal((await values(collector(t, dir, logger))).upkeep_backup_last_success_timestamp_seconds, now + 60);
  t.equal(logger.text(), '');
});
