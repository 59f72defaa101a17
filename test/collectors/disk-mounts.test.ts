import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { mountOf, parseMountInfo, readMount } from '../../src/collectors/disk-mounts.js';
import { waitFor } from '../fixtures/ports.js';
import { testApp, valueOf } from './helpers.js';

const run = promisify(execFile);

const MOUNTINFO = [
  '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard',
  '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs ro,size=4096k',
  '50 27 0:40 / /mnt/my\\040disk ro,nosuid - xfs /dev/sdb1 rw',
  '51 27 0:41 / /data rw shared:1 master:2 - ext4 /dev/sdc1 rw',
  '52 27 0:42 / /data rw - tmpfs over rw',
  'not a mountinfo line',
].join('\n');

t.test('parses mountinfo: escapes, optional fields, read-only from the mount or the superblock', (t) => {
  const mounts = parseMountInfo(MOUNTINFO);
  t.same(mounts, [
    { mountPoint: '/', fstype: 'ext4', device: '/dev/vda', readOnly: false },
    { mountPoint: '/sys/fs/cgroup', fstype: 'tmpfs', device: 'tmpfs', readOnly: true },
    { mountPoint: '/mnt/my disk', fstype: 'xfs', device: '/dev/sdb1', readOnly: true },
    { mountPoint: '/data', fstype: 'ext4', device: '/dev/sdc1', readOnly: false },
    { mountPoint: '/data', fstype: 'tmpfs', device: 'over', readOnly: false },
  ]);
  t.equal(mountOf(mounts, '/var/backups')?.device, '/dev/vda', 'the root holds what nothing else does');
  t.equal(mountOf(mounts, '/mnt/my disk/x')?.device, '/dev/sdb1');
  t.equal(mountOf(mounts, '/sys/fs/cgroup')?.fstype, 'tmpfs', 'the mount point itself');
  t.equal(mountOf(mounts, '/sys/fs/cgroupx')?.device, '/dev/vda', 'a name that only starts like a mount point is not under it');
  t.equal(mountOf(mounts, '/data/db')?.device, 'over', 'the last of two mounts on one point is the visible one');
  t.equal(mountOf([], '/x'), undefined);
  t.end();
});

t.test('without mountinfo (not Linux) there is no mount; other read errors are errors', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'upkeep-mounts-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  t.equal(await readMount(dir, join(dir, 'no-such-file')), undefined);
  await t.rejects(readMount(dir, dir), { code: 'EISDIR' });
});

/** What df and findmnt say about a path: the ground truth the metrics must equal. */
async function dfInodes(path: string): Promise<{ device: string; fstype: string; inodes: number; free: number; readOnly: boolean }> {
  const { stdout } = await run('df', ['--output=source,fstype,itotal,iavail', path]);
  const [device = '', fstype = '', inodes = '', free = ''] = stdout.trim().split('\n')[1]?.trim().split(/\s+/) ?? [];
  const { stdout: options } = await run('findmnt', ['-n', '-o', 'VFS-OPTIONS,FS-OPTIONS', '--target', path]);
  return { device, fstype, inodes: Number(inodes), free: Number(free), readOnly: options.trim().split(/[\s,]+/).includes('ro') };
}

t.test('inodes, device, type and read-only state equal df -i and findmnt', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'upkeep-disks-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const paths = ['/', root];
  // As root the test mounts two small tmpfs of its own: one with 100 inodes, one read-only.
  if (userInfo().uid === 0) {
    const small = join(root, 'small');
    const readOnly = join(root, 'read only');
    await mkdir(small);
    await mkdir(readOnly);
    await run('mount', ['-t', 'tmpfs', '-o', 'size=1m,nr_inodes=100', 'upkeep-small', small]);
    t.teardown(() => run('umount', [small]));
    await run('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'upkeep-ro', readOnly]);
    t.teardown(() => run('umount', [readOnly]));
    for (let i = 0; i < 10; i += 1) await writeFile(join(small, `f${i}`), '');
    paths.push(small, readOnly);
  }
  const app = await testApp(t, `targets:\n  disks:\n${paths.map((path) => `    - path: "${path}"\n`).join('')}`);
  // Other processes (the rest of the suite) create and delete files on / all the time: a scrape
  // between two df readings must lie between them (equal to both when nothing moved).
  const { samples } = await app.scrape();
  for (const path of paths) {
    const { truth, after, agreeing } = await waitFor(`a scrape between two df readings of ${path}`, async () => {
      const before = await dfInodes(path);
      const current = (await app.scrape()).samples;
      const df = await dfInodes(path);
      const free = valueOf(current, 'upkeep_disk_inodes_free', { path }) ?? Number.NaN;
      if (free < Math.min(before.free, df.free) || free > Math.max(before.free, df.free)) throw new Error(`${free} free inodes, df said ${before.free} then ${df.free}`);
      return { truth: before, after: df, agreeing: current };
    }, 10_000, 0);
    const free = valueOf(agreeing, 'upkeep_disk_inodes_free', { path }) ?? Number.NaN;
    t.ok(free >= Math.min(truth.free, after.free) && free <= Math.max(truth.free, after.free), `${path}: ${free} free inodes, df said ${truth.free} then ${after.free}`);
    t.equal(valueOf(agreeing, 'upkeep_disk_inodes', { path }), truth.inodes, `${path}: inodes`);
    t.equal(valueOf(samples, 'upkeep_disk_info', { path, device: truth.device, fstype: truth.fstype }), 1, `${path}: on ${truth.device} (${truth.fstype})`);
    t.equal(valueOf(samples, 'upkeep_disk_read_only', { path }), truth.readOnly ? 1 : 0, `${path}: read-only ${truth.readOnly}`);
  }
  if (paths.length === 4) {
    t.equal(valueOf(samples, 'upkeep_disk_inodes', { path: paths[2] ?? '' }), 100, 'nr_inodes=100');
    t.equal(valueOf(samples, 'upkeep_disk_inodes_free', { path: paths[2] ?? '' }), 89, 'the root directory and 10 files in use');
    t.equal(valueOf(samples, 'upkeep_disk_read_only', { path: paths[3] ?? '' }), 1);
  }
  t.equal(samples.filter((sample) => sample.name === 'upkeep_disk_info').length, paths.length, 'one info series per path');
});
