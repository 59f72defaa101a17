import { BlockList, isIP } from 'node:net';
import type { InterpolationError as ConfigError } from './interpolate.js';
import type { Config } from './schema.js';

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');
LOOPBACK.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');

/** 127.0.0.0/8, ::1 (also as [::1] or ::ffff:127.x) and localhost: reachable only from this machine. */
export function isLoopback(host: string): boolean {
  const address = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (address === 'localhost') return true;
  const family = isIP(address);
  if (family === 4) return LOOPBACK.check(address, 'ipv4');
  if (family === 6) return LOOPBACK.check(address, 'ipv6');
  return false;
}

/**
 * Listening beyond loopback without a token would let anyone who reaches the port start
 * remediations. `${UPKEEP_TOKEN:-}` with the variable unset gives exactly that, so it is refused.
 * The host is not quoted: a mistyped value could be anything.
 */
export function openToNetwork(host: string, authToken: string | undefined): string | null {
  if ((authToken ?? '') !== '' || isLoopback(host)) return null;
  return 'is empty while the listen address is not loopback (127.0.0.1, ::1, localhost): every POST would be open to the network; set a token or listen on 127.0.0.1';
}

function postgresReference(config: Readonly<Config>, target: string, database: string, path: string): ConfigError[] {
  const entry = config.targets.postgres.find((candidate) => candidate.name === target);
  if (!entry) return [{ path: `${path}.target`, message: 'names no targets.postgres entry' }];
  if (entry.databases !== 'auto' && !entry.databases.includes(database)) {
    return [{ path: `${path}.database`, message: 'is not in that target\'s databases list' }];
  }
  return [];
}

/**
 * What the config can prove about itself without knowing the remediations or collectors: every
 * rule matches something specific, POSTs are not left open to the network, and retention
 * policies and backup sources name a postgres target (and a database it watches).
 */
export function checkConsistency(config: Readonly<Config>): ConfigError[] {
  const errors: ConfigError[] = [];
  const open = openToNetwork(config.server.host, config.server.authToken);
  if (open) errors.push({ path: 'server.authToken', message: open });
  config.remediation.rules.forEach((rule, index) => {
    if (Object.keys(rule.match).length === 0) {
      errors.push({ path: `remediation.rules[${index}].match`, message: 'is empty, so the rule would match every alert; name at least one label (e.g. alertname)' });
    }
  });
  config.remediation.retention.forEach((policy, index) => {
    errors.push(...postgresReference(config, policy.target, policy.database, `remediation.retention[${index}]`));
  });
  config.targets.backups.forEach((backup, index) => {
    if (backup.source) errors.push(...postgresReference(config, backup.source.target, backup.source.database, `targets.backups[${index}].source`));
  });
  return errors;
}
