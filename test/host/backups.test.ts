import { mkdir, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import t from 'tap';
import { listBackups } from '../../src/systems/files/backups.js';
import { globToRegExp } from '../../src/systems/files/glob.js';
import { readVerify, recordVerify } from '../../src/systems/files/verify-ledger.js';
import { tempDir } from '../http/helpers.js';
import { appFromYaml, sample } from './app.js';

const DAY = 86400;
const now = Math.floor(Date.now() / 1000);

async function file(dir: string, name: string, content: string | Buffer, mtime: number): Promise<void> {
  await writeFile(join(dir, name), content);
  await utimes(join(dir, name), mtime, mtime);
}

t.test('glob patterns', async (t) => {
  t.ok(globToRegExp('refnet_*.sql.gz').test('refnet_20260101_020000.sql.gz'));
  t.notOk(globToRegExp('refnet_*.sql.gz').test('refnet_x.sql.gzip'));
  t.ok(globToRegExp('app-?.log').test('app-1.log'));
  t.notOk(globToRegExp('app-?.log').test('app-12.log'));
  t.ok(globToRegExp('a+b(1).log').test('a+b(1).log'));
});

t.test('the newest valid backup wins; newer temporary, partial, empty and corrupt files are ignored', async (t) => {
  const dir = await tempDir(t, 'upkeep-backups-');
  const state = await tempDir(t, 'upkeep-state-');
  const dump = gzipSync('CREATE TABLE t ();\n');
  await file(dir, 'refnet_20260101_020000.sql.gz', dump, now - 3 * DAY);
  await file(dir, 'refnet_20260102_020000.sql.gz', dump, now - 2 * DAY);
  await file(dir, 'refnet_20260103_020000.sql.gz.tmp', dump, now - 60);
  await file(dir, 'refnet_20260103_020000.sql.gz.partial', dump, now - 50);
  await file(dir, 'refnet_20260103_030000.sql.gz', '', now - 40);
  await file(dir, 'refnet_20260103_040000.sql.gz', 'not gzip at all', now - 30);
  await file(dir, 'other.sql.gz', dump, now - 10);
  await mkdir(join(dir, 'refnet_dir.sql.gz'));
  await symlink('/etc/hostname', join(dir, 'refnet_link.sql.gz'));

  const files = await listBackups(dir, 'refnet_*.sql.gz');
  t.same(files.map((f) => f.name), ['refnet_20260103_040000.sql.gz', 'refnet_20260102_020000.sql.gz', 'refnet_20260101_020000.sql.gz']);

  await recordVerify(state, 'refnet', { timestamp: now - 5 * DAY, file: 'refnet_20260101_020000.sql.gz' });
  const app = await appFromYaml(`state: { dir: ${state} }\ntargets:\n  backups:\n    - { name: refnet, dir: ${dir}, pattern: "refnet_*.sql.gz" }\n`);
  t.teardown(() => app.fastify.close());
  const body = (await app.fastify.inject({ method: 'GET', url: '/metrics' })).body;
  t.equal(sample(body, 'upkeep_backup_last_success_timestamp_seconds{backup="refnet"}'), now - 2 * DAY, 'mtime of the newest valid file');
  t.equal(sample(body, 'upkeep_backup_last_size_bytes{backup="refnet"}'), dump.length);
  t.equal(sample(body, 'upkeep_backup_files{backup="refnet"}'), 3);
  t.equal(sample(body, 'upkeep_backup_total_bytes{backup="refnet"}'), 2 * dump.length + 'not gzip at all'.length);
  t.equal(sample(body, 'upkeep_backup_last_verify_success_timestamp_seconds{backup="refnet"}'), now - 5 * DAY);
});

t.test('no valid backup: counts are exported, the timestamp is absent so "absent()" alerts can fire', async (t) => {
  const dir = await tempDir(t, 'upkeep-backups-');
  await file(dir, 'refnet_1.sql.gz.tmp', 'x', now);
  const app = await appFromYaml(`state: { dir: ${dir}/state }\ntargets:\n  backups:\n    - { name: refnet, dir: ${dir}, pattern: "refnet_*" }\n`);
  t.teardown(() => app.fastify.close());
  const body = (await app.fastify.inject({ method: 'GET', url: '/metrics' })).body;
  t.equal(sample(body, 'upkeep_backup_files{backup="refnet"}'), 0);
  t.equal(sample(body, 'upkeep_backup_last_success_timestamp_seconds{backup="refnet"}'), undefined);
  t.equal(sample(body, 'upkeep_backup_last_verify_success_timestamp_seconds{backup="refnet"}'), undefined);
});

t.test('a missing backup directory is reported, not silent: present 0, no files, no timestamp', async (t) => {
  const dir = await tempDir(t, 'upkeep-backups-');
  await file(dir, 'refnet_1.sql.gz', gzipSync('x'), now - 60);
  await recordVerify(join(dir, 'state'), 'gone', { timestamp: now - DAY, file: 'gone_1.sql.gz' });
  await writeFile(join(dir, 'plain-file'), 'not a directory');
  const app = await appFromYaml([
    `state: { dir: ${dir}/state }`,
    'targets:',
    '  backups:',
    `    - { name: refnet, dir: ${dir}, pattern: "refnet_*" }`,
    '    - { name: gone, dir: /nonexistent/backups, pattern: "*" }',
    `    - { name: file, dir: ${dir}/plain-file, pattern: "*" }`,
  ].join('\n'));
  t.teardown(() => app.fastify.close());
  const body = (await app.fastify.inject({ method: 'GET', url: '/metrics' })).body;
  t.equal(sample(body, 'upkeep_backup_dir_present{backup="refnet"}'), 1);
  t.equal(sample(body, 'upkeep_backup_files{backup="refnet"}'), 1);
  for (const backup of ['gone', 'file']) {
    t.equal(sample(body, `upkeep_collector_up{collector="backups",target="${backup}"}`), 1, `${backup}: the collection succeeds`);
    t.equal(sample(body, `upkeep_backup_dir_present{backup="${backup}"}`), 0, `${backup}: the directory is reported missing`);
    t.equal(sample(body, `upkeep_backup_files{backup="${backup}"}`), 0);
    t.equal(sample(body, `upkeep_backup_total_bytes{backup="${backup}"}`), 0);
    t.equal(sample(body, `upkeep_backup_last_success_timestamp_seconds{backup="${backup}"}`), undefined);
  }
  t.equal(sample(body, 'upkeep_backup_last_verify_success_timestamp_seconds{backup="gone"}'), now - DAY, 'the verify ledger is still read');
});

t.test('a directory that cannot be read (not merely missing) fails the collection', async (t) => {
  const dir = await tempDir(t, 'upkeep-backups-');
  await symlink(join(dir, 'loop'), join(dir, 'loop'));
  const app = await appFromYaml(`targets:\n  backups:\n    - { name: loop, dir: ${dir}/loop, pattern: "*" }\n`);
  t.teardown(() => app.fastify.close());
  const body = (await app.fastify.inject({ method: 'GET', url: '/metrics' })).body;
  t.equal(sample(body, 'upkeep_collector_up{collector="backups",target="loop"}'), 0, 'ELOOP is an error, not a missing directory');
  t.equal(sample(body, 'upkeep_backup_dir_present{backup="loop"}'), undefined);
});

t.test('the verify ledger ignores a malformed entry', async (t) => {
  const state = await tempDir(t, 'upkeep-state-');
  t.equal(await readVerify(state, 'none'), null);
  await mkdir(join(state, 'verify'), { recursive: true });
  await writeFile(join(state, 'verify', 'bad.json'), '{"timestamp":"yesterday"}');
  t.equal(await readVerify(state, 'bad'), null);
});
