import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, readdir, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import t, { type Test } from 'tap';
import type { CollectorInstance } from '../../src/collectors/framework/types.js';
import { logs as logsCollector, measureDir } from '../../src/collectors/logs.js';
import { parseConfig } from '../../src/config/load.js';
import { globToRegExp } from '../../src/systems/files/glob.js';
import { bufferLogger, type BufferLogger } from '../fixtures/log.js';
import { asNobody } from '../fixtures/as-nobody.js';

// Root reads a chmod 000 directory anyway. As root, the collector runs as nobody: in a child
// process (logs-child.ts, what a non-root `upkeep serve` does), or measureDir alone under seteuid.
const NOBODY = 65534;
const asRoot = process.getuid?.() === 0;
const CHILD = new URL('./logs-child.ts', import.meta.url).pathname;
const LOADER = new URL('../loader/register.mjs', import.meta.url).href;
const REPLY_TIMEOUT_MS = 15_000;
const SKIPPED = 'log subdirectory unreadable, skipped: its files are not counted in upkeep_log_dir_bytes and upkeep_log_files';

/** A temporary directory the child's user can traverse; modes are restored before it is removed. */
async function tree(t: Test): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'upkeep-logs-collector-'));
  await chmod(root, 0o755);
  t.teardown(async () => {
    await chmodAll(root, 0o755);
    await rm(root, { recursive: true, force: true });
  });
  return root;
}

/** Gives every directory below root (root first) the mode, so the teardown can remove them. */
async function chmodAll(dir: string, mode: number): Promise<void> {
  await chmod(dir, mode);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) await chmodAll(join(dir, entry.name), mode);
  }
}

async function file(path: string, bytes: number): Promise<void> {
  await writeFile(path, 'x'.repeat(bytes));
}

/** A directory the child can write (the app's state). */
async function writable(path: string): Promise<string> {
  await mkdir(path);
  if (asRoot) await chown(path, NOBODY, NOBODY);
  return path;
}

interface Reply { logs: Record<string, unknown>[]; metrics?: string; readyz?: { targets: Record<string, unknown>[] }; reading?: unknown }

/** The logs collector in a child process, as nobody when the test runs as root; ask() sends one request. */
function child(t: Test, mode: 'app' | 'reader', yaml: string): (request: 'scrape' | 'read') => Promise<Reply> {
  const command = [process.execPath, `--import=${LOADER}`, CHILD, mode, yaml];
  // A clean environment: tap's coverage and hooks would write where nobody may not.
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  const proc: ChildProcessWithoutNullStreams = asRoot
    ? spawn('runuser', ['-u', 'nobody', '--', ...command], { env })
    : spawn(command[0]!, command.slice(1), { env });
  let stderr = '';
  proc.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const lines = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  t.teardown(async () => {
    proc.stdin.end();
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    if (proc.exitCode === null && await Promise.race([exited.then(() => true), delay(5000, false)]) === false) proc.kill('SIGKILL');
  });
  return async (request) => {
    proc.stdin.write(`${request}\n`);
    const timeout = delay(REPLY_TIMEOUT_MS, null, { ref: false });
    const line = await Promise.race([lines.next(), timeout]);
    if (line === null || line.done) throw new Error(`no reply to ${request} from the logs child: ${stderr}`);
    return JSON.parse(line.value) as Reply;
  };
}

/** The exposition lines of the logs collector's series (cache age and duration vary, so left out). */
function logSeries(metrics = ''): string[] {
  return metrics.split('\n').filter((line) => /^upkeep_log_|^upkeep_collector_up\{collector="logs"/.test(line));
}

/** Log lines without what changes from run to run. */
function stable(logs: readonly Record<string, unknown>[]): Record<string, unknown>[] {
  return logs.map(({ time: _time, pid: _pid, hostname: _hostname, ...rest }) => rest);
}

t.test('measureDir sums matching files below the directory, never through symlinks', async (t) => {
  const root = await tree(t);
  const logs = join(root, 'logs');
  await mkdir(join(logs, 'worker'), { recursive: true });
  await file(join(logs, 'app.log'), 1000);
  await file(join(logs, 'notes.txt'), 300);
  await file(join(logs, 'worker', 'worker.log.1'), 200);
  await file(join(root, 'huge.log'), 5000);
  await symlink(join(root, 'huge.log'), join(logs, 'linked.log'));
  await symlink(root, join(logs, 'linked-dir'));
  t.same(await measureDir(logs, globToRegExp('*.log*')), { bytes: 1200, files: 2, unreadable: [] });
});

/** measureDir as nobody when the test runs as root: only while it runs, so nothing else is read as nobody. */
function measureAsUser(dir: string, match: RegExp): ReturnType<typeof measureDir> {
  return asNobody(() => measureDir(dir, match));
}

t.test('measureDir skips subdirectories it may not read; the directory itself must be readable', async (t) => {
  const root = await tree(t);
  const logs = join(root, 'logs');
  await mkdir(join(logs, 'private'), { recursive: true });
  await mkdir(join(logs, 'listonly'));
  await file(join(logs, 'app.log'), 1000);
  await file(join(logs, 'private', 'secret.log'), 5000);
  await file(join(logs, 'listonly', 'hidden.log'), 700);
  await chmod(join(logs, 'private'), 0o000);
  await chmod(join(logs, 'listonly'), 0o444);
  t.same(await measureAsUser(logs, globToRegExp('*.log')), { bytes: 1000, files: 1, unreadable: [
    { directory: join(logs, 'listonly'), err: `EACCES: permission denied, lstat '${join(logs, 'listonly', 'hidden.log')}'` },
    { directory: join(logs, 'private'), err: `EACCES: permission denied, scandir '${join(logs, 'private')}'` },
  ] });
  await t.rejects(measureAsUser(join(logs, 'private'), globToRegExp('*.log')), { code: 'EACCES' }, 'not skipped: the collection fails');
  await t.rejects(measureDir(join(logs, 'app.log'), globToRegExp('*.log')), { code: 'ENOTDIR' });
});

/** The collector of the one log target, in this process. */
function collector(t: Test, target: Record<string, unknown>, logger: BufferLogger): CollectorInstance {
  const parsed = parseConfig(JSON.stringify({ targets: { logs: [target] } }), {});
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  const [instance] = logsCollector.build({ config: parsed.config, log: logger.log });
  if (!instance) throw new Error('no collector for the log target');
  t.teardown(() => instance.close?.());
  return instance;
}

async function values(instance: CollectorInstance): Promise<Record<string, number>> {
  const { readings } = await instance.collect(new AbortController().signal);
  return Object.fromEntries(readings.map((reading) => [reading.family, reading.value]));
}

t.test('a readable directory and a missing one are readings; nothing is logged', async (t) => {
  const root = await tree(t);
  await mkdir(join(root, 'logs', 'worker'), { recursive: true });
  await file(join(root, 'logs', 'app.log'), 1000);
  await file(join(root, 'logs', 'worker', 'worker.log'), 200);
  const logger = bufferLogger();
  t.same(await values(collector(t, { name: 'here', dir: join(root, 'logs'), pattern: '*.log' }, logger)), {
    upkeep_log_dir_present: 1, upkeep_log_dir_bytes: 1200, upkeep_log_files: 2, upkeep_log_unreadable_dirs: 0,
  });
  t.same(await values(collector(t, { name: 'gone', dir: join(root, 'gone') }, logger)), {
    upkeep_log_dir_present: 0, upkeep_log_dir_bytes: 0, upkeep_log_files: 0, upkeep_log_unreadable_dirs: 0,
  });
  t.equal(logger.text(), '');
});

t.test('a refresh that fails after a reading serves the last reading and is logged once', async (t) => {
  const root = await tree(t);
  await mkdir(join(root, 'logs'));
  await file(join(root, 'logs', 'app.log'), 50);
  const current = join(root, 'current');
  await symlink(join(root, 'logs'), current);
  const logger = bufferLogger();
  const instance = collector(t, { name: 'app', dir: current, refreshSeconds: 0.02 }, logger);
  const reading = { upkeep_log_dir_present: 1, upkeep_log_dir_bytes: 50, upkeep_log_files: 1, upkeep_log_unreadable_dirs: 0 };
  t.same(await values(instance), reading);
  // The directory's path now ends in a symlink loop: stat fails with ELOOP.
  await unlink(current);
  await symlink(current, current);
  const deadline = Date.now() + 5000;
  while (logger.lines().length === 0 && Date.now() < deadline) {
    await delay(30);
    t.same(await values(instance), reading, 'the last reading, while the refresh fails');
  }
  await delay(60);
  await values(instance);
  t.same(stable(logger.lines()), [{ level: 40, name: 'app', err: `ELOOP: too many symbolic links encountered, stat '${current}'`, msg: 'log directory refresh failed; serving the last sizes read' }], 'once');
});

t.test('an unreadable subdirectory is skipped, counted and logged; the target stays up', async (t) => {
  const root = await tree(t);
  const logs = join(root, 'logs');
  await mkdir(join(logs, 'worker'), { recursive: true });
  await mkdir(join(logs, 'private'));
  await mkdir(join(logs, 'listonly'));
  await file(join(logs, 'app.log'), 1000);
  await file(join(logs, 'worker', 'worker.log'), 200);
  await file(join(logs, 'private', 'secret.log'), 5000);
  await file(join(logs, 'listonly', 'hidden.log'), 700);
  // Debian's /var/log/private (root's 0700, to nobody), and a directory one may list but not search.
  await chmod(join(logs, 'private'), 0o000);
  await chmod(join(logs, 'listonly'), 0o444);
  const state = await writable(join(root, 'state'));
  const ask = child(t, 'app', `state: { dir: ${state} }\ntargets:\n  logs:\n    - { name: system, dir: ${logs}, pattern: "*.log*" }\n`);

  const first = await ask('scrape');
  t.same(logSeries(first.metrics), [
    'upkeep_collector_up{collector="logs",target="system"} 1',
    'upkeep_log_dir_present{name="system"} 1',
    'upkeep_log_dir_bytes{name="system"} 1200',
    'upkeep_log_files{name="system"} 2',
    'upkeep_log_unreadable_dirs{name="system"} 2',
  ], 'everything readable is counted, and the two skipped directories');
  t.match(first.readyz?.targets, [{ collector: 'logs', target: 'system', up: true, lastError: null }]);
  t.same(stable(first.logs), [
    { level: 40, name: 'system', directory: join(logs, 'listonly'), err: `EACCES: permission denied, lstat '${join(logs, 'listonly', 'hidden.log')}'`, msg: SKIPPED },
    { level: 40, name: 'system', directory: join(logs, 'private'), err: `EACCES: permission denied, scandir '${join(logs, 'private')}'`, msg: SKIPPED },
  ]);
  const second = await ask('scrape');
  t.same(logSeries(second.metrics), logSeries(first.metrics));
  t.same(second.logs, [], 'not logged again at the next scrape');
});

t.test('each unreadable subdirectory is logged once while it stays unreadable, again when it turns unreadable again', async (t) => {
  const root = await tree(t);
  const logs = join(root, 'logs');
  await mkdir(join(logs, 'private', 'deeper'), { recursive: true });
  await file(join(logs, 'app.log'), 10);
  await file(join(logs, 'private', 'secret.log'), 20);
  await file(join(logs, 'private', 'deeper', 'old.log'), 40);
  const privateDir = join(logs, 'private');
  await chmod(privateDir, 0o000);
  const ask = child(t, 'reader', `targets:\n  logs:\n    - { name: system, dir: ${logs} }\n`);
  const unreadable = [{ directory: privateDir, err: `EACCES: permission denied, scandir '${privateDir}'` }];
  const warning = { level: 40, name: 'system', ...unreadable[0], msg: SKIPPED };

  const first = await ask('read');
  t.same(first.reading, { present: true, bytes: 10, files: 1, unreadable });
  t.same(stable(first.logs), [warning]);
  t.same(await ask('read'), { reading: { present: true, bytes: 10, files: 1, unreadable }, logs: [] }, 'once while it stays unreadable');

  await chmod(privateDir, 0o755);
  t.same(await ask('read'), { reading: { present: true, bytes: 70, files: 3, unreadable: [] }, logs: [] }, 'readable again: counted, nothing logged');
  await chmod(privateDir, 0o000);
  const again = await ask('read');
  t.same(again.reading, { present: true, bytes: 10, files: 1, unreadable });
  t.same(stable(again.logs), [warning], 'logged again');

  await chmod(privateDir, 0o755);
  await chmod(join(privateDir, 'deeper'), 0o000);
  const deeper = join(privateDir, 'deeper');
  const nested = await ask('read');
  t.same(nested.reading, { present: true, bytes: 30, files: 2, unreadable: [{ directory: deeper, err: `EACCES: permission denied, scandir '${deeper}'` }] });
  t.same(stable(nested.logs), [{ level: 40, name: 'system', directory: deeper, err: `EACCES: permission denied, scandir '${deeper}'`, msg: SKIPPED }]);
});

t.test('the log directory itself unreadable fails its collection; turning unreadable later is logged once', async (t) => {
  const root = await tree(t);
  const locked = join(root, 'locked');
  const later = join(root, 'later');
  await mkdir(locked);
  await mkdir(later);
  await file(join(later, 'app.log'), 50);
  await chmod(locked, 0o000);
  const state = await writable(join(root, 'state'));
  const ask = child(t, 'app', [
    `state: { dir: ${state} }`,
    'targets:',
    '  logs:',
    `    - { name: locked, dir: ${locked} }`,
    `    - { name: later, dir: ${later}, refreshSeconds: 0.05 }`,
  ].join('\n'));

  const first = await ask('scrape');
  const lockedError = `EACCES: permission denied, scandir '${locked}'`;
  t.same(logSeries(first.metrics).filter((line) => !line.includes('later')), ['upkeep_collector_up{collector="logs",target="locked"} 0'], 'no series but its collector_up 0');
  t.match(first.readyz?.targets, [{ target: 'locked', up: false, lastError: lockedError }, { target: 'later', up: true, lastError: null }]);
  t.same(stable(first.logs), [{ level: 40, collector: 'logs', target: 'locked', err: lockedError, msg: 'collection failed' }]);

  await chmod(later, 0o000);
  const logged: Record<string, unknown>[] = [];
  const deadline = Date.now() + 10_000;
  let metrics = '';
  while (logged.length === 0 && Date.now() < deadline) {
    await delay(60);
    const reply = await ask('scrape');
    metrics = reply.metrics ?? '';
    logged.push(...reply.logs);
  }
  t.same(stable(logged), [{ level: 40, name: 'later', err: `EACCES: permission denied, scandir '${later}'`, msg: 'log directory refresh failed; serving the last sizes read' }]);
  t.same(logSeries(metrics).filter((line) => line.includes('later')), [
    'upkeep_collector_up{collector="logs",target="later"} 1',
    'upkeep_log_dir_present{name="later"} 1',
    'upkeep_log_dir_bytes{name="later"} 50',
    'upkeep_log_files{name="later"} 1',
    'upkeep_log_unreadable_dirs{name="later"} 0',
  ], 'the last reading is served, its age growing');
  await delay(120);
  t.same((await ask('scrape')).logs, [], 'not logged again while it keeps failing');
});
