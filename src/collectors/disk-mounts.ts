import { readFile, realpath } from 'node:fs/promises';
import type { FamilySpec, Reading } from './framework/types.js';

// Inodes, and which filesystem a watched path is on: device, type and whether it is read-only,
// from /proc/self/mountinfo (Linux; elsewhere only the inode counts are reported).

export const MOUNT_FAMILIES: readonly FamilySpec[] = [
  { name: 'upkeep_disk_inodes', help: 'Inodes of the filesystem (df -i Inodes); 0 where the filesystem allocates them on demand.', type: 'gauge', labelNames: ['path'] },
  { name: 'upkeep_disk_inodes_free', help: 'Free inodes of the filesystem (df -i IFree).', type: 'gauge', labelNames: ['path'] },
  { name: 'upkeep_disk_read_only', help: 'Whether the filesystem is mounted read-only (1), by its mount or its superblock, or read-write (0).', type: 'gauge', labelNames: ['path'] },
  { name: 'upkeep_disk_info', help: 'The device and filesystem type the path is on (value 1).', type: 'gauge', labelNames: ['path', 'device', 'fstype'] },
];

export interface Mount {
  readonly mountPoint: string;
  readonly fstype: string;
  readonly device: string;
  readonly readOnly: boolean;
}

/** mountinfo escapes space, tab, newline and backslash as octal (\040). */
function unescape(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_match, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

/**
 * Parses /proc/self/mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE
 * SOURCE SUPEROPTIONS". Read-only is either the mount's own "ro" or the superblock's.
 */
export function parseMountInfo(text: string): Mount[] {
  const mounts: Mount[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const separator = fields.indexOf('-', 6);
    const [mountPoint, options] = [fields[4], fields[5]];
    const [fstype, device, superOptions] = [fields[separator + 1], fields[separator + 2], fields[separator + 3]];
    if (separator === -1 || mountPoint === undefined || options === undefined || fstype === undefined || device === undefined || superOptions === undefined) continue;
    const readOnly = options.split(',').includes('ro') || superOptions.split(',').includes('ro');
    mounts.push({ mountPoint: unescape(mountPoint), fstype: unescape(fstype), device: unescape(device), readOnly });
  }
  return mounts;
}

/** The mount an absolute, resolved path is on: the longest mount point above it, the last one mounted where several share it. */
export function mountOf(mounts: readonly Mount[], path: string): Mount | undefined {
  let best: Mount | undefined;
  for (const mount of mounts) {
    const prefix = mount.mountPoint.endsWith('/') ? mount.mountPoint : `${mount.mountPoint}/`;
    const contains = path === mount.mountPoint || path.startsWith(prefix);
    if (contains && (!best || mount.mountPoint.length >= best.mountPoint.length)) best = mount;
  }
  return best;
}

/** The mount of `path`, or undefined where there is no mountinfo (not Linux). */
export async function readMount(path: string, mountInfoFile = '/proc/self/mountinfo'): Promise<Mount | undefined> {
  let text: string;
  try {
    text = await readFile(mountInfoFile, 'utf8');
  } catch (err) {
    if (err instanceof Error && 'code' in err && err.code === 'ENOENT') return undefined;
    throw err;
  }
  return mountOf(parseMountInfo(text), await realpath(path));
}

export function mountReadings(path: string, stats: { files: number; ffree: number }, mount: Mount | undefined): Reading[] {
  const readings: Reading[] = [
    { family: 'upkeep_disk_inodes', labels: { path }, value: stats.files },
    { family: 'upkeep_disk_inodes_free', labels: { path }, value: stats.ffree },
  ];
  if (mount) {
    readings.push({ family: 'upkeep_disk_read_only', labels: { path }, value: mount.readOnly ? 1 : 0 });
    readings.push({ family: 'upkeep_disk_info', labels: { path, device: mount.device, fstype: mount.fstype }, value: 1 });
  }
  return readings;
}
