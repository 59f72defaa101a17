import { rmSync, unlinkSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import t from 'tap';
import { findFiles, within } from '../../../src/systems/files/sweep.js';
import { asNobody } from '../../fixtures/as-nobody.js';

async function area(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'upkeep-sweep-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

t.test('findFiles: a subdirectory or a file removed while the directory is walked is gone, not an error', async (t) => {
  const dir = await area(t);
  for (let i = 0; i < 10; i += 1) {
    await mkdir(join(dir, `d${i}`));
    await writeFile(join(dir, `d${i}`, 'inner.log'), 'x');
  }
  await writeFile(join(dir, 'top.log'), 'x');
  await writeFile(join(dir, 'vanishing.log'), 'x');
  // The first subdirectory entered removes the other nine: the walk comes to them once they are gone.
  let entered = '';
  const found = await findFiles({ name: 'busy', dir, pattern: '*.log' }, (name) => {
    if (name === 'vanishing.log') unlinkSync(join(dir, name));
    return true;
  }, undefined);
  t.ok(found.files.length > 0);
  const walked = await findFiles({ name: 'busy', dir, pattern: '*.log' }, (name) => {
    if (name === 'inner.log' && entered === '') {
      entered = 'one';
      for (let i = 0; i < 10; i += 1) rmSync(join(dir, `d${i}`), { recursive: true, force: true });
    }
    return true;
  });
  const names = walked.files.map((file) => relative(dir, file.path));
  t.notOk(found.files.some((file) => file.path.endsWith('vanishing.log')), 'a file removed between its listing and its reading is left out');
  t.ok(names.includes('top.log'), 'the top directory\'s files are found');
  t.ok(names.filter((name) => name.startsWith('d')).length <= 1, `the subdirectories removed before the walk entered them are left out (${names.join(', ')})`);
  t.same(walked.skipped, []);
});

t.test('within: a real path is inside its root, or below it; below / every absolute path is', async (t) => {
  t.ok(within('/srv/tmp', '/srv/tmp'));
  t.ok(within('/srv/tmp', '/srv/tmp/a/b'));
  t.notOk(within('/srv/tmp', '/srv/tmpfoo'), 'a sibling with the same prefix is outside');
  t.notOk(within('/srv/tmp', '/srv'));
  t.ok(within('/', '/'));
  t.ok(within('/', '/var/tmp'), 'an area at / enters its subdirectories');
});

t.test('findFiles: a subdirectory upkeep\'s user may not read is skipped and named; the area itself must be readable', async (t) => {
  const dir = await area(t);
  await chmod(dir, 0o755);
  await mkdir(join(dir, 'private'));
  await mkdir(join(dir, 'listonly'));
  await writeFile(join(dir, 'app.log'), 'x');
  await writeFile(join(dir, 'private', 'secret.log'), 'x');
  await writeFile(join(dir, 'listonly', 'hidden.log'), 'x');
  await chmod(join(dir, 'private'), 0o000);
  await chmod(join(dir, 'listonly'), 0o444);
  t.teardown(async () => {
    await chmod(join(dir, 'private'), 0o755);
    await chmod(join(dir, 'listonly'), 0o755);
  });
  // Root reads a chmod 000 directory anyway: as root, the walk runs as nobody (seteuid covers libuv's threads too).
  const found = await asNobody(() => findFiles({ name: 'app', dir, pattern: '*.log' }, (name) => name.endsWith('.log')));
  t.same(found.files.map((file) => relative(dir, file.path)), ['app.log']);
  t.same([...found.skipped].sort((a, b) => a.path.localeCompare(b.path)), [
    { path: join('listonly', 'hidden.log'), reason: "not readable by upkeep's user" },
    { path: 'private', reason: "not readable by upkeep's user" },
  ]);
  await t.rejects(asNobody(() => findFiles({ name: 'private', dir: join(dir, 'private'), pattern: '*.log' }, () => true)), { code: 'EACCES' }, 'the area itself: the run fails');
});
