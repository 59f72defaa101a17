import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

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
 * to a new image, the one it named before is removed, so the cache holds one image per tag.
 */
export async function buildCached(tag: string, args: readonly string[], context = '.'): Promise<void> {
  const before = await imageId(tag);
  await docker(['build', '--network', 'host', ...args, '-t', tag, context]);
  if (before && before !== await imageId(tag)) await docker(['image', 'rm', before]).catch(() => undefined);
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
