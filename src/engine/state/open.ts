import type { Config } from '../../config/schema.js';
import { parseDurationSeconds } from '../../config/duration.js';
import type { Logger } from '../../log.js';
import { FileStore } from './file-store.js';
import type { StateStore } from './store.js';

/** The state store the config asks for: the embedded file store under `state.dir`. */
export async function openStateStore(config: Readonly<Config>, log: Logger, now: () => number): Promise<StateStore> {
  const { remediation } = config;
  const retentionSeconds = parseDurationSeconds(config.state.retention);
  if (retentionSeconds === null) throw new Error(`state.retention: "${config.state.retention}" is not a duration such as "90 days"`);
  return FileStore.open({
    dir: config.state.dir,
    retentionMs: retentionSeconds * 1000,
    cooldownMs: remediation.cooldownSeconds * 1000,
    failureWindowMs: remediation.circuitBreaker.windowSeconds * 1000,
    log, now,
  });
}
