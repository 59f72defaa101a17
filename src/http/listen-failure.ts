import { errorCode } from '../errors.js';
import { errorMessage } from '../redact.js';

// What a user can do about each refusal of listen(2).
const REASONS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'the port is in use (another upkeep?); stop what holds it, or choose another port with --port or server.port',
  EACCES: 'permission denied: a port below 1024 needs root or CAP_NET_BIND_SERVICE; choose a port above 1023',
  EADDRNOTAVAIL: 'no interface of this machine has that address; give one it has with --host or server.host',
};

/** One line for stderr on why `upkeep serve` could not listen: before, node printed the exception's stack and exited 1. */
export function listenFailure(host: string, port: number, err: unknown): string {
  const code = errorCode(err) ?? '';
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return `cannot listen on ${address}: ${REASONS[code] ?? errorMessage(err)}`;
}

/**
 * Why `upkeep serve` cannot start on 0.0.0.0 here, or null. Fastify names every address 0.0.0.0
 * covers once it listens, through os.networkInterfaces() (getifaddrs, a netlink socket); where
 * netlink is refused (systemd's RestrictAddressFamilies= without AF_NETLINK) that threw inside
 * Fastify's listening handler, and serve died with a stack trace, restarted, and died again.
 */
export function interfacesProblem(host: string, port: number, listInterfaces: () => unknown): string | null {
  if (host !== '0.0.0.0') return null;
  try {
    listInterfaces();
    return null;
  } catch (err) {
    return `cannot listen on ${host}:${port}: the machine's network interfaces cannot be listed (${errorMessage(err)}), and listening on 0.0.0.0 names each of their addresses; under systemd allow AF_NETLINK in RestrictAddressFamilies=, or listen on one address with --host or server.host`;
  }
}

/**
 * listenFailure's line if `host:port` cannot be listened on now, else null: a probe that binds
 * and closes. The demo checks its --port with it before it spends seconds starting PostgreSQL,
 * Redis, Prometheus and Alertmanager.
 */
export async function listenProblem(host: string, port: number): Promise<string | null> {
  const { createServer } = await import('node:net');
  const probe = createServer();
  return new Promise((resolve) => {
    probe.once('error', (err) => resolve(listenFailure(host, port, err)));
    probe.listen(port, host, () => probe.close(() => resolve(null)));
  });
}
