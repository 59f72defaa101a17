import { chmod, chown, mkdir, mkdtemp, rm, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import t, { type Test } from 'tap';
import { backups, lastVerified } from '../../src/collectors/backups.js';
import { recordVerify } from '../../src/systems/files/verify-ledger.js';
import type { CollectorContext, CollectorInstance, SharedSuccess } from '../../src/collectors/framework/types.js';
import { parseConfig } from '../../src/config/load.js';
import { bufferLogger, type BufferLogger } from '../fixtures/log.js';
import { asNobody } from '../fixtures/as-nobody.js';

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

function collector(t: Test, dir: string, logger: BufferLogger, successes?: CollectorContext['successes']): CollectorInstance {
  const parsed = parseConfig(JSON.stringify({ state: { dir: join(dir, 'state') }, targets: { backups: [{ name: 'app', dir, pattern: 'app_*.sql.gz' }] } }), {});
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  const [instance] = backups.build({ config: parsed.config, log: logger.log, ...(successes ? { successes } : {}) });
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
    upkeep_backup_unreadable: 0,
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

t.test('a backup upkeep\'s user may not read is counted as unreadable and logged once, never silently dropped', async (t) => {
  const dir = await tempDir(t);
  await chmod(dir, 0o755);
  const now = Math.floor(Date.now() / 1000);
  const dump = gzipSync('CREATE TABLE t ();\n-- PostgreSQL database dump complete\n');
  await file(dir, 'app_20260101_020000.sql.gz', dump, now - 30 * 3600);
  // Another user's `pg_dump -Fd` (its directory 0700), and a dump written with umask 077.
  const directory = join(dir, 'app_20260102_020000.dir');
  await mkdir(directory, { mode: 0o700 });
  await file(directory, 'toc.dat', Buffer.from('PGDMP-toc'), now - 2 * 3600);
  await chmod(directory, 0o700);
  await file(dir, 'app_20260102_030000.sql.gz', dump, now - 3600);
  await chmod(join(dir, 'app_20260102_030000.sql.gz'), 0o600);
  if (process.getuid?.() === 0) {
    await chown(directory, 0, 0);
    await chown(join(dir, 'app_20260102_030000.sql.gz'), 0, 0);
  }
  const logger = bufferLogger();
  const parsed = parseConfig(JSON.stringify({ state: { dir: join(dir, 'state') }, targets: { backups: [{ name: 'app', dir, pattern: 'app_*' }] } }), {});
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  const [instance] = backups.build({ config: parsed.config, log: logger.log });
  if (!instance) throw new Error('no collector for the backup');
  const collect = () => asNobody(() => values(instance));

  t.same(await collect(), {
    upkeep_backup_dir_present: 1,
    upkeep_backup_files: 2,
    upkeep_backup_total_bytes: 2 * dump.length,
    upkeep_backup_unreadable: 2,
    upkeep_backup_last_success_timestamp_seconds: now - 30 * 3600,
    upkeep_backup_last_size_bytes: dump.length,
  }, 'the readable dump is the newest valid one; the two others are counted as unreadable');
  await collect();
  const message = 'backup not readable by upkeep\'s user: not counted, never the newest valid backup (pg_dump -Fd makes its directory 0700; let upkeep\'s user read it)';
  const logged = () => logger.lines().map(({ level, msg, backup, file, err }) => ({ level, msg, backup, file, err }));
  t.same(logged(), [
    { level: 40, msg: message, backup: 'app', file: directory, err: `EACCES: permission denied, stat '${join(directory, 'toc.dat')}'` },
    { level: 40, msg: message, backup: 'app', file: join(dir, 'app_20260102_030000.sql.gz'), err: `EACCES: permission denied, open '${join(dir, 'app_20260102_030000.sql.gz')}'` },
  ], 'each once, not at every scrape');

  await chmod(directory, 0o755);
  await chmod(join(directory, 'toc.dat'), 0o644);
  const fixed = await collect();
  t.same([fixed.upkeep_backup_unreadable, fixed.upkeep_backup_files, fixed.upkeep_backup_last_success_timestamp_seconds], [1, 3, now - 2 * 3600], 'once readable, the directory-format dump is the newest valid backup');
  t.equal(logged().length, 2, 'nothing more logged');
});

t.test('the verify time is the newer of this replica\'s ledger and the shared record', async (t) => {
  t.equal(lastVerified(null, undefined), null, 'never verified: no series, so BackupNeverVerified can fire');
  t.equal(lastVerified({ timestamp: 1_700_000_000.25, file: 'a' }, undefined), 1_700_000_000.25);
  t.equal(lastVerified(null, { atMs: 1_700_000_100_500, detail: 'b' }), 1_700_000_100.5);
  t.equal(lastVerified({ timestamp: 1_700_000_200, file: 'a' }, { atMs: 1_700_000_100_500, detail: 'b' }), 1_700_000_200);
  t.equal(lastVerified({ timestamp: 1_700_000_000, file: 'a' }, { atMs: 1_700_000_100_500, detail: 'b' }), 1_700_000_100.5);
});

t.test('a verify another replica recorded in the shared state is exported, and the newer of it and the ledger in state.dir', async (t) => {
  const dir = await tempDir(t);
  const asked: string[] = [];
  let shared = new Map<string, SharedSuccess>([['app', { atMs: 1_700_000_100_500, detail: 'app_1.sql.gz' }], ['other', { atMs: 1_800_000_000_000, detail: 'x' }]]);
  const instance = collector(t, dir, bufferLogger(), async (remediation) => { asked.push(remediation); return shared; });
  const verified = async () => (await values(instance)).upkeep_backup_last_verify_success_timestamp_seconds;
  t.equal(await verified(), 1_700_000_100.5, 'only the shared record: another replica verified it');
  await recordVerify(join(dir, 'state'), 'app', { timestamp: 1_700_000_000, file: 'app_0.sql.gz' });
  t.equal(await verified(), 1_700_000_100.5, 'the ledger\'s older verify does not hide it');
  await recordVerify(join(dir, 'state'), 'app', { timestamp: 1_700_000_200, file: 'app_2.sql.gz' });
  t.equal(await verified(), 1_700_000_200, 'a newer verify in the ledger wins');
  shared = new Map();
  t.equal(await verified(), 1_700_000_200, 'no shared record: the ledger alone, as without state.postgres');
  t.same([...new Set(asked)], ['backup.verify'], 'it asks for backup.verify\'s successes');
});
