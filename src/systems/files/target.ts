import { z } from 'zod';
import { name, seconds } from '../fields.js';

// A glob of file names. picomatch throws on a pattern over 65,536 characters (config checks and
// listings compile them), and no file name is longer than 255 bytes.
const glob = z.string().min(1).max(1024, 'must be at most 1024 characters (a glob of file names)');

/** A `targets.backups` entry: the dump files of one backup, and the database they come from. */
export const backupTarget = z.strictObject({
  name,
  dir: z.string().min(1),
  pattern: glob,
  keepDays: z.number().int().positive().default(7),
  source: z.strictObject({ target: name, database: z.string().min(1) }).optional(),
});

/** A `targets.disks` entry: a mounted path whose file system is measured. */
export const diskTarget = z.strictObject({ path: z.string().min(1) });

/** A `targets.logs` entry: a directory of log files. */
export const logTarget = z.strictObject({
  name,
  dir: z.string().min(1),
  pattern: glob.default('*'),
  refreshSeconds: seconds.default(60),
});

/** A `targets.files` entry: a directory of disposable files (temporary files, caches) that files.cleanup may delete from. */
export const fileTarget = z.strictObject({
  name,
  dir: z.string().min(1),
  pattern: glob.default('*'),
});

export type BackupTarget = z.infer<typeof backupTarget>;
export type LogTarget = z.infer<typeof logTarget>;
export type FileTarget = z.infer<typeof fileTarget>;
