import type { Config } from '../../config/schema.js';
import { parseDurationSeconds } from '../../config/duration.js';
import type { Logger } from '../../log.js';
import { FileStore } from './file-store.js';
import { PostgresStore } from './postgres-store.js';
import type { StateStore } from './store.js';

/** The state store the config asks for: PostgreSQL when `state.postgres` is set, else the embedded file store under `state.dir`. */
export async function openStateStore(config: Readonly<Config>, log: Logger, now: () => number): Promise<StateStore> {
  const { remediation, state } = config;
  const retentionSeconds = parseDurationSeconds(state.retention);
  if (retentionSeconds === null) throw new Error(`state.retention: "${state.retention}" is not a duration such as "90 days"`);
  const common = {
    retentionMs: retentionSeconds * 1000,
    cooldownMs: remediation.cooldownSeconds * 1000,
    failureWindowMs: remediation.circuitBreaker.windowSeconds * 1000,
    log, now,
  };
  if (state.postgres) return PostgresStore.open({ ...common, url: state.postgres.url, schema: state.postgres.schema, timeoutMs: state.postgres.timeoutSeconds * 1000 });
  return FileStore.open({ ...common, dir: state.dir });
}
