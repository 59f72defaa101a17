import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort, waitFor } from '../fixtures/ports.js';

/**
 * The package as users get it: `npm pack`, then `npm install TARBALL --omit=dev` into an empty
 * directory. Product tests drive that installed `upkeep` as a child process over real sockets.
 * Test files run in parallel processes, so the first one packs and installs, under a lock
 * directory, into a folder named after the hash of everything that goes into the package; the
 * others wait for it and reuse it.
 */
const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PACKAGED = ['src', 'bin', 'alerts', 'grafana', 'examples', 'docs', 'package.json', 'package-lock.json', 'tsconfig.json', 'scripts/build.ts', 'README.md'];

async function filesUnder(path: string): Promise<string[]> {
  const info = await stat(path).catch(() => null);
  if (!info) return [];
  if (!info.isDirectory()) return [path];
  const entries = await readdir(path);
  const nested = await Promise.all(entries.sort().map((entry) => filesUnder(join(path, entry))));
  return nested.flat();
}

async function contentHash(): Promise<string> {
  const hash = createHash('sha256');
  for (const top of PACKAGED) {
    for (const file of await filesUnder(join(ROOT, top))) {
      hash.update(relative(ROOT, file)).update('\0').update(await readFile(file)).update('\0');
    }
  }
  return hash.digest('hex').slice(0, 16);
}

async function packAndInstall(dir: string): Promise<void> {
  const work = `${dir}.partial-${process.pid}`;
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  const env = { ...process.env, NODE_OPTIONS: '', TAP: '', npm_config_update_notifier: 'false' };
  const { stdout } = await run('npm', ['pack', '--silent', '--pack-destination', work], { cwd: ROOT, env, maxBuffer: 16 * 1024 * 1024 });
  const tarball = stdout.trim().split('\n').pop() ?? '';
  await writeFile(join(work, 'package.json'), '{"name":"upkeep-product-test","private":true}\n');
  await run('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline', join(work, tarball)], { cwd: work, env, maxBuffer: 16 * 1024 * 1024 });
  await rename(work, dir);
}

let installed: Promise<string> | null = null;

/** The directory holding node_modules/.bin/upkeep, installed from the packed tarball. */
export function installedPackage(): Promise<string> {
  installed ??= (async () => {
    const dir = join(tmpdir(), `upkeep-installed-${await contentHash()}`);
    const lock = `${dir}.lock`;
    for (let attempt = 0; ; attempt += 1) {
      if (await stat(join(dir, 'node_modules', 'upkeep', 'dist', 'cli.js')).catch(() => null)) return dir;
      try {
        await mkdir(lock);
      } catch {
        // Another test process is packing; a lock older than 5 minutes was left by a killed one.
        const age = Date.now() - ((await stat(lock).catch(() => null))?.mtimeMs ?? Date.now());
        if (age > 300_000) await rm(lock, { recursive: true, force: true });
        if (attempt > 1200) throw new Error(`gave up waiting for ${lock}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
        continue;
      }
      try {
        await packAndInstall(dir);
        return dir;
      } finally {
        await rm(lock, { recursive: true, force: true });
      }
    }
  })();
  return installed;
}

/** The installed `upkeep` binary. */
export async function upkeepBin(): Promise<string> {
  return join(await installedPackage(), 'node_modules', '.bin', 'upkeep');
}

/** The installed package's bin/upkeep.js, for starting it with node's own flags (`node FLAGS SCRIPT`). */
export async function upkeepScript(): Promise<string> {
  return join(await installedPackage(), 'node_modules', 'upkeep', 'bin', 'upkeep.js');
}

/**
 * The command that starts the installed package: its `upkeep` as users run it, or, given node's
 * flags (those NODE_OPTIONS refuses go only here), `node FLAGS bin/upkeep.js`. That second form
 * skips bin/upkeep's sizing of V8's helper threads, as a user who starts node by hand does.
 */
export async function upkeepCommand(nodeArgs?: readonly string[]): Promise<{ file: string; args: string[] }> {
  return nodeArgs === undefined || nodeArgs.length === 0
    ? { file: await upkeepBin(), args: [] }
    : { file: process.execPath, args: [...nodeArgs, await upkeepScript()] };
}

// The child must run exactly as a user's would: without tap's loaders or coverage hooks.
// tap's process tracking (@tapjs/processinfo) wraps child_process and puts its own loader back
// into every child's NODE_OPTIONS, whatever env the child is given. That loader registers module
// hooks on a thread of their own, which about doubled the CPU of each start (check-config: 0.35 →
// 0.70 s), and it turns on V8's precise block coverage unless told not to: a counter in every
// block and a 3 MB coverage file at exit, for a bundle the report does not count (it covers src/).
// So the child is started through `env -u NODE_OPTIONS`, which drops what the wrapper added
// before node starts; a test's own NODE_OPTIONS is set again after it. `env` execs node, so the
// child's PID is node's own (the tests signal it).
function userEnv(extra: Readonly<Record<string, string>>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key === 'NODE_OPTIONS' || key.startsWith('TAP') || key.startsWith('_TAPJS') || key === 'NODE_V8_COVERAGE') continue;
    env[key] = value;
  }
  return { ...env, _TAPJS_PROCESSINFO_COVERAGE_: '0', ...extra };
}

/** The file, arguments and env that start `command ARGS` as a user would (see userEnv), with `extra` in its env. */
export function asUser(command: string, args: readonly string[], extra: Readonly<Record<string, string>> = {}): { file: string; args: string[]; env: NodeJS.ProcessEnv } {
  const nodeOptions = extra['NODE_OPTIONS'];
  return {
    file: '/usr/bin/env',
    args: ['-u', 'NODE_OPTIONS', ...(nodeOptions === undefined ? [] : [`NODE_OPTIONS=${nodeOptions}`]), command, ...args],
    env: userEnv(extra),
  };
}

export interface CliResult { code: number | null; stdout: string; stderr: string }

/** Starts the installed `upkeep ARGS` as a user would, keeping what it prints; `exited` is its exit code and the signal that ended it. */
export async function spawnInstalled(args: readonly string[], options: { env?: Record<string, string>; cwd?: string } = {}) {
  const user = asUser(await upkeepBin(), args, options.env);
  const child = spawn(user.file, user.args, { env: user.env, cwd: options.cwd ?? tmpdir(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  return { child, exited, stdout: () => stdout, stderr: () => stderr };
}

/** Runs the installed `upkeep ARGS` to completion. */
export async function upkeep(args: readonly string[], options: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  const started = await spawnInstalled(args, options);
  const timer = setTimeout(() => started.child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  const [code] = await started.exited;
  clearTimeout(timer);
  return { code, stdout: started.stdout(), stderr: started.stderr() };
}

export interface Served {
  readonly child: ChildProcess;
  readonly port: number;
  readonly base: string;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** The JSON log lines so far (a line that is not JSON fails the caller's assertions). */
  logLines(): Record<string, unknown>[];
  /** Waits until some log line matches (within `timeoutMs`, default 30 s), then gives every line that does. */
  logged(what: string, matches: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>[]>;
  alive(): boolean;
  /** SIGTERM, then the exit code (SIGKILL after 15 s). */
  stop(): Promise<number | null>;
}

/** Starts the installed `upkeep serve --config FILE` at its default log level on a free port. */
export async function serveInstalled(
  t: { teardown(fn: () => unknown): void },
  configFile: string,
  options: { env?: Record<string, string>; args?: readonly string[]; port?: number; nodeArgs?: readonly string[] } = {},
): Promise<Served> {
  const port = options.port ?? await freePort();
  const cwd = await mkdtemp(join(tmpdir(), 'upkeep-cwd-'));
  const launch = await upkeepCommand(options.nodeArgs);
  const user = asUser(launch.file, [...launch.args, 'serve', '--config', configFile, '--port', String(port), ...(options.args ?? [])], options.env);
  const child = spawn(user.file, user.args, { env: user.env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  child.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  const exited = once(child, 'exit');
  const alive = () => child.exitCode === null && child.signalCode === null;
  const served: Served = {
    child, port, base: `http://127.0.0.1:${port}`,
    output: () => output,
    logLines: () => output.split('\n').filter((line) => line.trim() !== '').map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        return { notJson: line };
      }
    }),
    alive,
    logged: (what, matches, timeoutMs = 30_000) => waitFor(what, async () => {
      const lines = served.logLines().filter(matches);
      if (lines.length === 0) throw new Error('not logged yet');
      return lines;
    }, timeoutMs, 50),
    async stop() {
      if (!alive()) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
      return child.exitCode;
    },
  };
  t.teardown(async () => {
    if (alive()) { child.kill('SIGKILL'); await exited; }
    await rm(cwd, { recursive: true, force: true });
  });
  await waitFor('the installed upkeep to answer /healthz', async () => {
    if (!alive()) throw new Error(`upkeep exited (${child.exitCode ?? child.signalCode}): ${output}`);
    const response = await fetch(`${served.base}/healthz`);
    if (response.status !== 200) throw new Error(`status ${response.status}`);
  });
  return served;
}

/** A config file in a fresh directory; the caller's object is written as YAML-compatible JSON. */
export async function writeConfig(t: { teardown(fn: () => unknown): void }, config: Record<string, unknown>): Promise<{ file: string; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'upkeep-product-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const withState = { state: { dir: join(dir, 'state') }, ...config };
  const file = join(dir, 'upkeep.yml');
  await writeFile(file, `${JSON.stringify(withState, null, 2)}\n`);
  return { file, dir };
}

/** A process's resident memory now and at its peak (VmRSS, VmHWM), in bytes. */
export async function memoryOf(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kilobytes = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { rss: kilobytes('VmRSS') * 1024, peak: kilobytes('VmHWM') * 1024 };
}
