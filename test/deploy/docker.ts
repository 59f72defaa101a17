import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CACHE_DIR, underLock } from './base-image.js';

const run = promisify(execFile);
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
// The classic builder: this machine's docker CLI has no buildx, and the tests need no BuildKit feature.
const DOCKER_ENV = { ...process.env, DOCKER_BUILDKIT: '0' };

export async function docker(args: readonly string[]): Promise<string> {
  const { stdout } = await run('docker', [...args], { env: DOCKER_ENV, cwd: ROOT, maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

async function imageId(reference: string): Promise<string | null> {
  return docker(['image', 'inspect', '--format', '{{.Id}}', reference]).then((out) => out.trim(), () => null);
}

/**
 * `docker build ARGS -t TAG` for an image kept as a build cache between runs: when the tag moves
 * to a new image, the one it named before is removed, so the cache holds one image per tag. Under
 * a lock per tag: the classic builder does not share a step two builds run at once, so a test
 * waits for the same build started by test/deploy/prebuild.ts, then finds every step cached.
 */
export async function buildCached(tag: string, args: readonly string[], context = '.'): Promise<void> {
  await underLock(join(CACHE_DIR, `${tag.replace(/[^a-z0-9-]/g, '-')}.lock`), async () => {
    const before = await imageId(tag);
    await docker(['build', '--network', 'host', ...args, '-t', tag, context]);
    if (before && before !== await imageId(tag)) await docker(['image', 'rm', before]).catch(() => undefined);
  });
}

/** The product image's stages that change rarely (apt, then npm ci), for test/deploy/image.test.ts. */
export async function cachedImageStages(base: string): Promise<void> {
  await buildCached('upkeep-test-cache:system', ['--build-arg', `BASE_IMAGE=${base}`, '--target', 'system']);
  await buildCached('upkeep-test-cache:deps', ['--build-arg', `BASE_IMAGE=${base}`, '--target', 'deps']);
}

/** The image test/deploy/systemd.test.ts boots: systemd as PID 1 on the base image. */
export function systemdImage(base: string): Promise<void> {
  return buildCached('upkeep-test-cache:systemd', ['--build-arg', `BASE_IMAGE=${base}`], 'test/deploy/systemd');
}

/**
 * Why systemd cannot boot in a container on this machine, or false when it can: the container
 * gets the host's cgroup v1 hierarchy, mounted read-write, which is what this kind of machine has.
 */
export async function systemdSkipReason(): Promise<string | false> {
  const cgroup = (await command(['stat', '-f', '-c', '%T', '/sys/fs/cgroup'])).stdout.trim();
  return cgroup === 'tmpfs' ? false : `systemd in a container is set up for cgroup v1 here; /sys/fs/cgroup is ${cgroup}`;
}

export interface ScriptResult { code: number | null; stdout: string; stderr: string }

/** Runs a command and collects its output and exit code. */
export async function command(argv: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ScriptResult> {
  const [file = 'false', ...args] = argv;
  const child = spawn(file, args, { cwd: options.cwd ?? ROOT, env: options.env ?? DOCKER_ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

/** Runs a shell script with bash -euo pipefail. */
export function bash(script: string, options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ScriptResult> {
  return command(['bash', '-euo', 'pipefail', '-c', script], options);
}
