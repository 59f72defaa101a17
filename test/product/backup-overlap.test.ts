import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { upkeep } from './installed.js';

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'upkeep-backup-overlap-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The tester's two entries in one directory, app's pattern as given. */
function config(dir: string, appPattern: string): string {
  return [
    'targets:',
    '  postgres: [{ name: main, url: "postgres://127.0.0.1:5432/app", databases: [app] }]',
    '  backups:',
    `    - { name: app,         dir: ${dir}, pattern: "${appPattern}",         keepDays: 7,  source: { target: main, database: app } }`,
    `    - { name: app_archive, dir: ${dir}, pattern: "app_archive_*.sql.gz", keepDays: 30, source: { target: main, database: app } }`,
    '',
  ].join('\n');
}

t.test('the installed check-config refuses two backups whose patterns overlap in one directory', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'upkeep.yml');
  await writeFile(file, config(join(dir, 'backups'), 'app_*.sql.gz'));
  const result = await upkeep(['check-config', '--config', file]);
  t.equal(result.code, 1, result.stderr);
  t.equal(result.stdout, '');
  t.equal(result.stderr, [
    `${file}: 1 config error(s)`,
    '  targets.backups[1].dir: is also the dir of targets.backups[0], whose pattern matches the files backup.pg_dump writes for this entry, so targets.backups[0]\'s metrics would count them and its backup.pg_dump delete them once past its keepDays; narrow targets.backups[0].pattern to its own files, e.g. "app_2*.sql.gz"',
    '',
  ].join('\n'));
});

t.test('the installed check-config accepts the pair once app\'s pattern is narrowed', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'upkeep.yml');
  await writeFile(file, config(join(dir, 'backups'), 'app_2*.sql.gz'));
  const result = await upkeep(['check-config', '--config', file]);
  t.equal(result.code, 0, result.stderr);
  t.match(result.stdout, /^config OK\n/);
  t.match(result.stdout, 'backups=2');
});
