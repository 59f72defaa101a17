import { accessSync, constants, readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';

/**
 * libpq's sslmode for upkeep's own sessions, so that one URL means to them what it means to
 * pg_dump and psql, which get it too. pg's own parser takes require (and prefer, verify-ca) as
 * verify-full: a server with a self-signed certificate (Debian's postgresql package ships one)
 * refused the collectors' sessions while pg_dump connected, and pg wrote a deprecation warning
 * to stderr on every new connection.
 *   disable, none given: no TLS (libpq's default is prefer; pg's, and upkeep's before, none).
 *   allow: no TLS (libpq's tries TLS only if the server refuses a session without it).
 *   prefer: TLS without a certificate check, as libpq's; where the server has no TLS, libpq's
 *     falls back to none and upkeep's fails, saying so (src/errors.ts): never plaintext unasked.
 *   require: TLS without a certificate check, or, with sslrootcert, as verify-ca (libpq's rule).
 *   verify-ca: TLS, the certificate chain checked against sslrootcert.
 *   verify-full: TLS, the chain checked against sslrootcert and the host name or address.
 * Both verify modes need sslrootcert: libpq 15 (pg_dump's) has no "system" CAs, and looks in
 * ~/.postgresql/root.crt instead, which upkeep does not read.
 * sslcert and sslkey add a client certificate to any mode that uses TLS.
 */
const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
type SslMode = typeof SSL_MODES[number];

// Read here, and taken out of the URL pg parses, which would apply its own meaning to them.
const TLS_PARAMETERS = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'sslpassword', 'ssl', 'sslnegotiation', 'uselibpqcompat'];

function isSslMode(mode: string): mode is SslMode {
  return (SSL_MODES as readonly string[]).includes(mode);
}

// The TLS option each file parameter fills.
const PEMS = [['ca', 'sslrootcert'], ['cert', 'sslcert'], ['key', 'sslkey']] as const;

function unreadable(err: unknown): string {
  return err instanceof Error && 'code' in err ? String(err.code) : 'unreadable';
}

/**
 * What is wrong with a URL's TLS parameters, for the config's check (at start and by
 * check-config); null when nothing is. The files are read by this process's user, as pg_dump's
 * and every session's will be; one that cannot be is said here, not at each scrape.
 */
export function sslProblem(url: string): string | null {
  const query = new URL(url).searchParams;
  const mode = query.get('sslmode');
  if (mode !== null && !isSslMode(mode)) return `sslmode "${mode}" is not one of ${SSL_MODES.join(', ')}`;
  if ((mode === 'verify-ca' || mode === 'verify-full') && !query.get('sslrootcert')) return `sslmode=${mode} needs sslrootcert (the CA file the server's certificate is checked against)`;
  for (const name of ['ssl', 'uselibpqcompat']) {
    if (query.has(name)) return `"${name}" is not a libpq parameter (pg_dump and psql refuse it); set sslmode (disable, require, verify-ca, verify-full)`;
  }
  if (query.has('sslnegotiation')) return '"sslnegotiation" is not supported by upkeep (nor by libpq 15\'s pg_dump); leave it out';
  for (const [, name] of PEMS) {
    const path = query.get(name);
    if (!path) continue;
    try {
      accessSync(path, constants.R_OK);
    } catch (err) {
      return `${name} ${path}: cannot read it (${unreadable(err)})`;
    }
  }
  return null;
}

function readPem(parameter: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`${parameter} ${path}: cannot read it (${unreadable(err)})`);
  }
}

/**
 * Puts the URL's files into `options` as properties read at each connection, as libpq reads them:
 * a renewed client certificate or CA reaches the next session without a restart (pg copies these
 * properties when it opens each TLS connection; a pool's clients share one object). The first
 * read is here, so a file missing now fails at once; one that goes missing later keeps the last
 * content read, since a throw there would be inside pg's handshake, uncaught. Configurable: pg
 * makes `key` non-enumerable, so logging the options does not print it.
 */
function addPems(options: ConnectionOptions, query: URLSearchParams): ConnectionOptions {
  for (const [option, parameter] of PEMS) {
    const path = query.get(parameter);
    if (!path) continue;
    let last = readPem(parameter, path);
    Object.defineProperty(options, option, {
      enumerable: true,
      configurable: true,
      get: () => {
        try {
          last = readFileSync(path, 'utf8');
        } catch {
          // Kept: see above.
        }
        return last;
      },
    });
  }
  return options;
}

/** A Unix socket's directory as the host (`?host=/run/postgresql`, or `%2Frun%2Fpostgresql`). */
function socketHost(parsed: URL): boolean {
  return (parsed.searchParams.get('host') ?? decodeURIComponent(parsed.hostname)).startsWith('/');
}

/** pg's client settings for a URL: the URL without its TLS parameters, and the TLS options they mean. */
export function pgConnection(url: string): { connectionString: string; ssl: false | ConnectionOptions } {
  const parsed = new URL(url);
  const query = parsed.searchParams;
  // A URL without them goes to pg as it was written (re-encoding its query changes nothing, but
  // nothing needs it either).
  if (!TLS_PARAMETERS.some((name) => query.has(name))) return { connectionString: url, ssl: false };
  const mode = query.get('sslmode') ?? 'prefer';
  const tls = new URLSearchParams(query);
  for (const name of TLS_PARAMETERS) query.delete(name);
  const connectionString = parsed.toString();
  // libpq uses no TLS on a Unix socket, whatever sslmode says; PostgreSQL offers none there.
  if (mode === 'disable' || mode === 'allow' || socketHost(parsed)) return { connectionString, ssl: false };
  // pg checks the name against the host it connects to (a ?host= over the URL's own included).
  if (mode === 'verify-full') return { connectionString, ssl: addPems({}, tls) };
  if (mode === 'verify-ca' || (mode === 'require' && tls.has('sslrootcert'))) return { connectionString, ssl: addPems({ checkServerIdentity: () => undefined }, tls) };
  return { connectionString, ssl: addPems({ rejectUnauthorized: false }, tls) };
}
