import { mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { makeDirectory } from '../../../src/systems/files/make-directory.js';

t.test('makeDirectory makes every missing directory, and accepts one that exists', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'upkeep-mkdir-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const deep = join(root, 'a', 'b', 'c');
  await makeDirectory(deep);
  t.ok((await stat(deep)).isDirectory());
  await makeDirectory(deep);
  await makeDirectory(join(root, 'a'));
  await Promise.all([makeDirectory(join(root, 'x', 'y')), makeDirectory(join(root, 'x', 'z'))]);
  t.ok((await stat(join(root, 'x', 'z'))).isDirectory(), 'two at once, sharing a parent that one of them makes');
});

t.test('makeDirectory fails at once where mkdir refuses, instead of spinning as node\'s recursive mkdir does under /proc', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'upkeep-mkdir-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  await t.rejects(makeDirectory('/proc/upkeep-no-such-dir/state'), { code: 'ENOENT', syscall: 'mkdir', path: '/proc/upkeep-no-such-dir' });
  await writeFile(join(root, 'file'), '');
  await t.rejects(makeDirectory(join(root, 'file', 'sub')), { code: 'ENOTDIR' }, 'a file in the way');
  await t.rejects(makeDirectory(join(root, 'file')), { code: 'EEXIST', path: join(root, 'file') }, 'a file where the directory should be');
  await symlink(join(root, 'gone'), join(root, 'dangling'));
  await t.rejects(makeDirectory(join(root, 'dangling', 'sub')), { code: 'EEXIST', path: join(root, 'dangling') }, 'a dangling symlink in the way');
});
