import { errorMessage } from '../redact.js';

// What a user can do about each refusal of listen(2).
const REASONS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'the port is in use (another upkeep?); stop what holds it, or choose another port with --port or server.port',
  EACCES: 'permission denied: a port below 1024 needs root or CAP_NET_BIND_SERVICE; choose a port above 1023',
  EADDRNOTAVAIL: 'no interface of this machine has that address; give one it has with --host or server.host',
};

/** One line for stderr on why `upkeep serve` could not listen: before, node printed the exception's stack and exited 1. */
export function listenFailure(host: string, port: number, err: unknown): string {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : '';
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return `cannot listen on ${address}: ${REASONS[code] ?? errorMessage(err)}`;
}
