import { spawn, type ChildProcess } from 'node:child_process';
import { access, constants, readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Readable } from 'node:stream';

const DEBIAN_ROOT = '/usr/lib/postgresql';
const FALLBACK_DIRS = ['/usr/local/bin', '/usr/bin'];
const STDERR_TAIL_BYTES = 4096;

async function firstExecutable(candidates: readonly string[]): Promise<string | null> {
  for (const candidate of candidates) {
    if (await access(candidate, constants.X_OK).then(() => true, () => false)) return candidate;
  }
  return null;
}

/**
 * The client binary to use: the newest Debian-style /usr/lib/postgresql/N/bin one (pg_dump must be
 * at least the server's major version), else /usr/local/bin or /usr/bin. Absolute, so the child
 * needs no PATH.
 */
export async function postgresBinary(name: 'pg_dump' | 'pg_restore' | 'psql', root = DEBIAN_ROOT): Promise<string> {
  const versions = await readdir(root).catch(() => [] as string[]);
  const found = await firstExecutable([
    ...versions.filter((version) => /^\d+(\.\d+)?$/.test(version)).sort((a, b) => Number(b) - Number(a)).map((version) => join(root, version, 'bin', name)),
    ...FALLBACK_DIRS.map((dir) => join(dir, name)),
  ]);
  if (!found) throw new Error(`${name} not found in ${root}/*/bin or ${FALLBACK_DIRS.join(', ')}; install the PostgreSQL client (apt-get install postgresql-client)`);
  return found;
}

/** A base system tool (gzip, tail, sed), by absolute path. */
export async function systemBinary(name: 'gzip' | 'tail' | 'sed'): Promise<string> {
  const found = await firstExecutable(['/usr/bin', '/bin', '/usr/local/bin'].map((dir) => join(dir, name)));
  if (!found) throw new Error(`${name} not found in /usr/bin, /bin or /usr/local/bin; install it`);
  return found;
}

const SECRET_PARAMS = ['password', 'sslpassword'];

/**
 * A libpq URL without its password (neither `user:password@` nor `?password=`, nor `sslpassword`), plus the
 * environment that carries the password instead, so it never shows in the process list or a plan.
 * The password is read as node-pg reads it (the query's first), so pg_dump logs in exactly as
 * upkeep's own clients do. The other query parameters are kept as written: libpq decodes only %XX.
 */
export function libpqTarget(connectionUrl: string): { url: string; env: Record<string, string> } {
  const url = new URL(connectionUrl);
  const password = new URLSearchParams(url.search).get('password') || decodeURIComponent(url.password);
  // sslpassword has no libpq environment variable, and upkeep's own client (node-pg) cannot open
  // an encrypted sslkey, so no working target needs it: dropped, it was in pg_dump's argv and plan.
  const kept = url.search.slice(1).split('&').filter((pair) => pair !== '' && !SECRET_PARAMS.some((name) => new URLSearchParams(pair).has(name)));
  url.password = '';
  url.search = kept.length > 0 ? `?${kept.join('&')}` : '';
  return { url: url.toString(), env: password ? { PGPASSWORD: password } : {} };
}

/** Keeps the last few KB of a child's stderr, for error messages. */
export function stderrTail(stream: Readable | null): () => string {
  let tail = '';
  stream?.setEncoding('utf8').on('data', (chunk: string) => {
    tail = (tail + chunk).slice(-STDERR_TAIL_BYTES);
  });
  return () => tail.trim();
}

/** How a child ended: its exit code, or the signal that ended it. */
export interface ExitStatus { code: number | null; signal: NodeJS.Signals | null }

/**
 * Whether a child early in a pipeline died only because the next one stopped reading: a consequence
 * of the next one's failure, not a cause. Node joins children with socket pairs, so the writer sees
 * "Connection reset by peer" as often as SIGPIPE or "Broken pipe".
 */
export function brokenPipe(status: ExitStatus, stderr: string): boolean {
  return status.signal === 'SIGPIPE' || /stdout: (broken pipe|connection reset by peer)/i.test(stderr);
}

/** Resolves with the exit code (or the signal that ended the child), after its stdio closed. */
export function exited(child: ChildProcess): Promise<ExitStatus> {
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
}

export type Stdio = 'ignore' | 'pipe' | number | Readable;

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'];

/**
 * The command line that runs `binary` so it dies with upkeep: setpriv --pdeathsig KILL (util-linux)
 * where available. Without it a kill -9 of upkeep would leave pg_dump and gzip running to the end.
 */
export async function childCommand(binary: string): Promise<string[]> {
  const setpriv = await firstExecutable(SETPRIV);
  return setpriv ? [setpriv, '--pdeathsig', 'KILL', '--', binary] : [binary];
}

export function spawnClient(command: readonly string[], args: readonly string[], env: Record<string, string>, stdio: [Stdio, Stdio, 'pipe'], signal: AbortSignal): ChildProcess {
  const [binary = '', ...prefix] = command;
  // Only what libpq needs: the child does not inherit upkeep's environment (tokens, other secrets).
  return spawn(binary, [...prefix, ...args], { env: { PGCONNECT_TIMEOUT: '30', ...env }, stdio, signal, killSignal: 'SIGTERM' });
}

/** A stdio stream spawned as 'pipe' (never null then; the types cannot know that). */
export function piped<T>(stream: T | null, what: string): T {
  if (stream === null) throw new Error(`${what} is not piped`);
  return stream;
}

// pg_dump 15.14+ ends with \unrestrict KEY after the "dump complete" comment; 1 KB holds both.
export const ENDING_BYTES = 1024;

/** "gzip: /dir/file.gz: unexpected end of file" -> "unexpected end of file". */
export function gzipMessage(stderr: string, path: string): string {
  return stderr.split('\n').map((line) => line.replace(/^gzip: /, '').replace(`${path}: `, '')).join('; ');
}

/** What `gzip -dc | tail -c 1024` found: the ending, or gzip's reason the stream does not decompress in full. */
export type GunzipEnding = { ok: true; text: string } | { ok: false; error: string };

/**
 * gzip -dc [-- FILE] | tail -c 1024, joined by an OS pipe: proves the whole input decompresses (CRC
 * and length checked) and keeps how it ends, without the decompressed bytes passing through upkeep.
 * Without a file, gzip reads the returned child's stdin.
 */
export async function gunzipTail(path: string | null, signal: AbortSignal): Promise<{ unzip: ChildProcess; ending: Promise<GunzipEnding> }> {
  const [gzip, tail] = await Promise.all([systemBinary('gzip').then(childCommand), systemBinary('tail').then(childCommand)]);
  const unzip = spawnClient(gzip, path === null ? ['-dc'] : ['-dc', '--', path], {}, [path === null ? 'pipe' : 'ignore', 'pipe', 'pipe'], signal);
  const unzipError = stderrTail(unzip.stderr);
  const unzipExit = exited(unzip);
  const decompressed = piped(unzip.stdout, 'gzip stdout');
  const last = spawnClient(tail, ['-c', String(ENDING_BYTES)], {}, [decompressed, 'pipe', 'pipe'], signal);
  decompressed.destroy();
  let text = '';
  piped(last.stdout, 'tail stdout').setEncoding('latin1').on('data', (chunk: string) => { text += chunk; });
  const ending = Promise.all([unzipExit, exited(last)]).then(([unzipped]): GunzipEnding => unzipped.code === 0
    ? { ok: true, text }
    : { ok: false, error: gzipMessage(unzipError(), path ?? 'stdin') || `gzip exited with ${unzipped.code ?? unzipped.signal}` });
  return { unzip, ending };
}

/** How the gzipped dump at `path` ends, once it decompressed in full (else an error that says why). */
export async function dumpEnding(path: string, signal: AbortSignal): Promise<string> {
  const ending = await (await gunzipTail(path, signal)).ending;
  if (!ending.ok) throw new Error(`${basename(path)} is corrupt or truncated: ${ending.error}`);
  return ending.text;
}
