import { chmod, chown, lstat, lutimes, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { gunzipSync } from 'node:zlib';
import t from 'tap';
import { describeSteps } from '../../src/actions/file-steps.js';
import { filesCleanup } from '../../src/actions/files-cleanup.js';
import { logsRotate } from '../../src/actions/logs-rotate.js';
import { cleanupSteps, rotationMatcher, rotationSteps, type FoundFile } from '../../src/systems/files/sweep.js';
import { ValidationError } from '../../src/errors.js';
import { buildContext, perform, testConfig } from './context.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;

/** Writes a file and sets its mtime to `ageMs` ago. */
async function aged(path: string, ageMs: number, content = `${path}\n`.repeat(50)): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, content);
  const when = new Date(Date.now() - ageMs);
  await utimes(path, when, when);
}

/** Every entry below dir (relative paths), symlinks marked with "@". */
async function listing(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const path = relative(dir, join(entry.parentPath, entry.name));
    out.push(entry.isSymbolicLink() ? `${path}@` : path);
  }
  return out.sort();
}

t.test('pure planning', async (t) => {
  const now = Date.now();
  const file = (path: string, ageMs: number): FoundFile => ({ path, sizeBytes: 1, mtimeMs: now - ageMs });
  const files = [file('/l/a.log', HOUR), file('/l/b.log', 2 * DAY), file('/l/c.log', 31 * DAY), file('/l/d.log.gz', 3 * DAY), file('/l/e.log.gz', 40 * DAY)];
  t.same(rotationSteps(files, now, 1, 30).map((step) => `${step.op} ${step.file.path}`), ['compress /l/b.log', 'delete /l/c.log', 'delete /l/e.log.gz']);
  t.same(cleanupSteps(files, now, 24).map((step) => step.file.path), ['/l/b.log', '/l/c.log', '/l/d.log.gz', '/l/e.log.gz']);
  const match = rotationMatcher('app-*.log');
  t.same(['app-1.log', 'app-1.log.gz', 'app-1.txt', 'app-1.txt.gz', 'x-app-1.log'].map(match), [true, true, false, false, false]);
  const many = Array.from({ length: 501 }, (_, i) => ({ op: 'delete' as const, file: file(`/l/${i}`, DAY) }));
  const plan = describeSteps(many);
  t.equal(plan.length, 501);
  t.same(plan.at(-1), { kind: 'file', detail: '... and 1 more files' });
  t.throws(() => logsRotate.params.parse({ name: 'x', compressAfterDays: 10, deleteAfterDays: 5 }), /deleteAfterDays must not be less/);
  t.throws(() => filesCleanup.params.parse({ name: 'x', olderThanHours: 0 }));
  t.same(logsRotate.params.parse({ name: 'x', compressAfterDays: '2', deleteAfterDays: '14' }), { name: 'x', compressAfterDays: 2, deleteAfterDays: 14 });
  t.equal(logsRotate.risk(logsRotate.params.parse({ name: 'x' })), 'disruptive');
  t.equal(filesCleanup.risk(filesCleanup.params.parse({ name: 'x' })), 'destructive');
  t.same(logsRotate.lock(logsRotate.params.parse({ name: 'x' }), testConfig({})), { kind: 'local', key: 'logs.rotate:x' });
  t.same(filesCleanup.lock(filesCleanup.params.parse({ name: 'x' }), testConfig({})), { kind: 'local', key: 'files.cleanup:x' });
});

t.test('logs.rotate on files with known mtimes', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'upkeep-rotate-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const logs = join(root, 'logs');
  const outside = join(root, 'outside');
  await aged(join(logs, 'app-today.log'), HOUR);
  await aged(join(logs, 'app-2d.log'), 2 * DAY);
  await aged(join(logs, 'app-40d.log'), 40 * DAY);
  await aged(join(logs, 'app-10d.log.gz'), 10 * DAY);
  await aged(join(logs, 'app-31d.log.gz'), 31 * DAY);
  await aged(join(logs, 'other-40d.txt'), 40 * DAY);
  await aged(join(logs, 'nested', 'app-3d.log'), 3 * DAY);
  await aged(join(logs, 'app-5d.log'), 5 * DAY);
  await aged(join(logs, 'app-5d.log.gz'), 5 * DAY, 'someone else made this');
  await aged(join(outside, 'app-old.log'), 100 * DAY);
  await aged(join(outside, 'app-secret.log'), 100 * DAY);
  await symlink(join(outside, 'app-secret.log'), join(logs, 'app-link.log'));
  await lutimes(join(logs, 'app-link.log'), new Date(Date.now() - 100 * DAY), new Date(Date.now() - 100 * DAY));
  await symlink(outside, join(logs, 'linked-dir'));
  // The app's user and a log reader's mode, which the .gz keeps (as root; another user keeps its own).
  const asRoot = process.getuid?.() === 0;
  if (asRoot) await chown(join(logs, 'app-2d.log'), 65534, 65534);
  await chmod(join(logs, 'app-2d.log'), 0o644);
  await chmod(join(logs, 'nested', 'app-3d.log'), 0o600);
  const twoDayMtime = (await stat(join(logs, 'app-2d.log'))).mtimeMs;
  const twoDayContent = await readFile(join(logs, 'app-2d.log'));
  const context = buildContext({ targets: { logs: [{ name: 'app', dir: logs, pattern: 'app-*.log' }] } });
  t.teardown(() => context.close());

  t.test('a dry run lists the exact steps and changes nothing', async (t) => {
    const before = await listing(logs);
    const params = await logsRotate.resolve(logsRotate.params.parse({ name: 'app' }), context);
    const { steps: plan } = await logsRotate.plan(params, context);
    const real = (name: string) => join(logs, name);
    t.same(plan.map((step) => step.detail), [
      `gzip ${real('app-2d.log')} -> ${real('app-2d.log')}.gz (mtime kept), then unlink ${real('app-2d.log')}`,
      `unlink ${real('app-31d.log.gz')}`,
      `unlink ${real('app-40d.log')}`,
      `gzip ${real('app-5d.log')} -> ${real('app-5d.log')}.gz (mtime kept), then unlink ${real('app-5d.log')}`,
      `gzip ${real('nested/app-3d.log')} -> ${real('nested/app-3d.log')}.gz (mtime kept), then unlink ${real('nested/app-3d.log')}`,
    ]);
    t.same(await listing(logs), before);
  });

  t.test('the run compresses and deletes exactly the old files, never through symlinks', async (t) => {
    const result = await perform(logsRotate, { name: 'app' }, context);
    t.equal(result.before.proceed, true);
    t.same(await listing(logs), [
      'app-10d.log.gz', 'app-2d.log.gz', 'app-5d.log', 'app-5d.log.gz', 'app-link.log@', 'app-today.log', 'linked-dir@', 'nested', 'nested/app-3d.log.gz', 'other-40d.txt',
    ]);
    t.same(await listing(outside), ['app-old.log', 'app-secret.log'], 'nothing outside the directory was touched');
    t.equal((await lstat(join(outside, 'app-secret.log'))).isFile(), true);
    t.ok(Date.now() - (await stat(join(outside, 'app-old.log'))).mtimeMs > 99 * DAY);
    t.equal((await stat(join(logs, 'app-2d.log.gz'))).mtimeMs, twoDayMtime, 'the .gz keeps the original mtime');
    const zipped = await stat(join(logs, 'app-2d.log.gz'));
    t.same([zipped.mode & 0o777, (await stat(join(logs, 'nested', 'app-3d.log.gz'))).mode & 0o777], [0o644, 0o600], 'and its mode');
    if (asRoot) t.same([zipped.uid, zipped.gid], [65534, 65534], 'and its owner');
    t.same(gunzipSync(await readFile(join(logs, 'app-2d.log.gz'))), twoDayContent);
    t.equal(await readFile(join(logs, 'app-5d.log.gz'), 'utf8'), 'someone else made this', 'an existing .gz is never replaced');
    t.equal(result.output.detail.compressed, 2);
    t.equal(result.output.detail.deleted, 2);
    t.same(result.output.detail.skipped, [{ path: 'app-link.log', reason: 'symlink (never followed)' }, { path: 'app-5d.log', reason: 'app-5d.log.gz already exists' }]);
    t.equal(result.verification.ok, true);
    t.equal(result.verification.detail, '2 compressed, 2 deleted, nothing left to rotate; left as they are: app-link.log (symlink (never followed)), app-5d.log (app-5d.log.gz already exists)', 'what was left is said where upkeep run prints it');
  });

  t.test('verify notices work left undone', async (t) => {
    const params = logsRotate.params.parse({ name: 'app' });
    const verification = await logsRotate.verify(params, { proceed: true, reason: '' }, { detail: { compressed: 0, deleted: 0, freedBytes: 0, files: { compressed: [], deleted: [] }, skipped: [] } }, context);
    t.equal(verification.ok, false);
    t.match(verification.detail, /still to rotate: app-5d.log/);
  });

  t.test('nothing old enough: the check skips', async (t) => {
    const params = logsRotate.params.parse({ name: 'app', compressAfterDays: 20, deleteAfterDays: 60 });
    const check = await logsRotate.check(params, context);
    t.equal(check.proceed, false);
    t.match(check.reason, /no log file is old enough/);
  });

  t.test('unknown names and missing directories are refused', async (t) => {
    await t.rejects(logsRotate.resolve(logsRotate.params.parse({ name: 'nope' }), context), ValidationError);
    const missing = buildContext({ targets: { logs: [{ name: 'gone', dir: join(root, 'missing'), pattern: '*' }] } });
    t.teardown(() => missing.close());
    await t.rejects(logsRotate.resolve(logsRotate.params.parse({ name: 'gone' }), missing), /gone: cannot use .*missing/);
  });

  t.test('the run stops at the deadline', async (t) => {
    const aborted = buildContext({ targets: { logs: [{ name: 'app', dir: logs, pattern: 'app-*.log' }] } });
    t.teardown(() => aborted.close());
    aborted.abort.abort();
    await t.rejects(logsRotate.run(logsRotate.params.parse({ name: 'app' }), { root: logs, steps: [{ op: 'delete', file: { path: join(logs, 'app-31d.log.gz'), sizeBytes: 0, mtimeMs: 0 } }], skipped: [] }, aborted));
    t.ok(await stat(join(logs, 'app-5d.log')));
  });
});

t.test('files.cleanup', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'upkeep-cleanup-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const scratch = join(root, 'scratch');
  const outside = join(root, 'outside');
  await aged(join(scratch, 'fresh.tmp'), 2 * HOUR);
  await aged(join(scratch, 'day-old.tmp'), 30 * HOUR);
  await aged(join(scratch, 'older.tmp'), 50 * HOUR);
  await aged(join(scratch, 'keep.conf'), 50 * HOUR);
  await aged(join(scratch, 'deep', 'nested.tmp'), 48 * HOUR);
  await aged(join(outside, 'precious.tmp'), 100 * HOUR);
  await symlink(join(outside, 'precious.tmp'), join(scratch, 'link.tmp'));
  await symlink(outside, join(scratch, 'elsewhere'));
  // The configured path may itself be a symlink; the walk happens inside its real directory.
  await symlink(scratch, join(root, 'scratch-link'));
  const context = buildContext({
    targets: {
      files: [{ name: 'tmp', dir: join(root, 'scratch-link'), pattern: '*.tmp' }, { name: 'both', dir: scratch }, { name: 'notdir', dir: join(scratch, 'keep.conf') }],
      logs: [{ name: 'both', dir: scratch }, { name: 'applogs', dir: outside, pattern: '*.none' }],
    },
  });
  t.teardown(() => context.close());

  t.test('deletes exactly the matching files over the age, leaves symlinks and their targets', async (t) => {
    const result = await perform(filesCleanup, { name: 'tmp', olderThanHours: 24 }, context);
    t.same(await listing(scratch), ['deep', 'elsewhere@', 'fresh.tmp', 'keep.conf', 'link.tmp@']);
    t.same(await listing(outside), ['precious.tmp']);
    t.equal(result.output.detail.deleted, 3);
    t.same(result.output.detail.files, { compressed: [], deleted: ['day-old.tmp', 'deep/nested.tmp', 'older.tmp'] });
    t.ok(Number(result.output.detail.freedBytes) > 0);
    t.equal(result.verification.ok, true);
    t.match(result.verification.detail, /^3 deleted \(\d+ bytes\), none left over 24h$/);
  });

  t.test('then nothing is left to do', async (t) => {
    const check = await filesCleanup.check(filesCleanup.params.parse({ name: 'tmp' }), context);
    t.equal(check.proceed, false);
    const verification = await filesCleanup.verify(filesCleanup.params.parse({ name: 'tmp', olderThanHours: 1 }), check, { detail: { compressed: 0, deleted: 0, freedBytes: 0, files: { compressed: [], deleted: [] }, skipped: [] } }, context);
    t.equal(verification.ok, false, 'fresh.tmp is over 1h');
    t.match(verification.detail, /still to delete: fresh.tmp/);
  });

  t.test('names: only targets.files entries; log directories, unknown names and non-directories are refused', async (t) => {
    const both = await filesCleanup.resolve(filesCleanup.params.parse({ name: 'both', olderThanHours: 100 }), context);
    t.match(await filesCleanup.check(both, context), { proceed: false, observed: { delete: 0, files: 2 } }, 'a name also used by targets.logs means the files entry');
    const notFiles = 'unknown directory "applogs" (not in targets.files; files.cleanup deletes only from those)';
    t.throws(() => filesCleanup.screen?.(filesCleanup.params.parse({ name: 'applogs' }), context.config, 'alert'), { name: 'ValidationError', message: notFiles }, 'refused before the run is queued');
    await t.rejects(filesCleanup.resolve(filesCleanup.params.parse({ name: 'applogs' }), context), { name: 'ValidationError', message: notFiles });
    await t.rejects(filesCleanup.resolve(filesCleanup.params.parse({ name: 'nope' }), context), /unknown directory "nope"/);
    await t.rejects(filesCleanup.resolve(filesCleanup.params.parse({ name: 'notdir' }), context), /is not a directory/);
    t.throws(() => logsRotate.screen?.(logsRotate.params.parse({ name: 'tmp' }), context.config, 'alert'), /unknown log directory "tmp" \(not in targets.logs\)/);
    t.throws(() => filesCleanup.params.parse({ name: '../../etc\u0000' }), /must not contain control characters/);
  });
});

/** A run signal whose deadline passes just before the sweep's `n`-th file: the sweep looks at it before each. */
function deadlineBefore(n: number): AbortSignal {
  const controller = new AbortController();
  const { signal } = controller;
  let looks = 0;
  const look = signal.throwIfAborted.bind(signal);
  signal.throwIfAborted = () => {
    looks += 1;
    if (looks === n) controller.abort(new Error('deadline of 1s passed'));
    look();
  };
  return signal;
}

t.test('a sweep stopped part-way journals what it had done: the deadline in files.cleanup, an I/O error in logs.rotate', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'upkeep-partial-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const scratch = join(root, 'scratch');
  const logs = join(root, 'logs');
  for (const name of ['a', 'b', 'c', 'd']) await aged(join(scratch, `${name}.tmp`), 50 * HOUR, 'x'.repeat(100));
  await aged(join(logs, 'app-a.log'), 40 * DAY, 'y'.repeat(30));
  await aged(join(logs, 'app-b.log'), 45 * DAY, 'y'.repeat(30));
  await aged(join(logs, 'app-c.log'), 5 * DAY);
  await aged(join(logs, 'app-d.log'), 50 * DAY);
  const context = buildContext({ targets: { files: [{ name: 'tmp', dir: scratch, pattern: '*.tmp' }], logs: [{ name: 'app', dir: logs, pattern: 'app-*.log' }] } });
  t.teardown(() => context.close());

  const cleanup = await filesCleanup.resolve(filesCleanup.params.parse({ name: 'tmp', olderThanHours: 24 }), context);
  const cleanupPlan = await filesCleanup.plan(cleanup, context);
  await t.rejects(filesCleanup.run(cleanup, cleanupPlan.payload, { ...context, signal: deadlineBefore(3) }), {
    name: 'PartialWork', message: 'deadline of 1s passed',
    done: { compressed: 0, deleted: 2, freedBytes: 200, files: { compressed: [], deleted: ['a.tmp', 'b.tmp'] }, skipped: [] },
  }, 'the deadline after two files: the two it deleted');
  t.same(await listing(scratch), ['c.tmp', 'd.tmp'], 'and only those are gone');

  // Where the gzip of app-c.log is written first, a directory: compressing it fails, after two files.
  await mkdir(join(logs, '.app-c.log.gz.upkeep-tmp'));
  const rotate = await logsRotate.resolve(logsRotate.params.parse({ name: 'app', compressAfterDays: 1, deleteAfterDays: 30 }), context);
  const rotatePlan = await logsRotate.plan(rotate, context);
  t.same(rotatePlan.steps.map((step) => step.detail.replaceAll(`${logs}/`, '')), [
    'unlink app-a.log', 'unlink app-b.log', 'gzip app-c.log -> app-c.log.gz (mtime kept), then unlink app-c.log', 'unlink app-d.log',
  ]);
  await t.rejects(logsRotate.run(rotate, rotatePlan.payload, context), {
    name: 'PartialWork', message: /EISDIR/,
    done: { compressed: 0, deleted: 2, freedBytes: 60, files: { compressed: [], deleted: ['app-a.log', 'app-b.log'] }, skipped: [] },
  }, 'an error at the third file: the two it deleted');
  t.same(await listing(logs), ['.app-c.log.gz.upkeep-tmp', 'app-c.log', 'app-d.log'], 'and only those are gone');
});

