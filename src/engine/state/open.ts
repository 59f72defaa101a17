import type { Config } from '../../config/schema.js';
import { parseDurationSeconds } from '../../config/duration.js';
import type { Logger } from '../../log.js';
import { FileStore } from './file-store.js';
import { PostgresStore } from './postgres-store.js';
import type { StateStore } from './store.js';

/** How long the journal keeps a run: `state.retention`, in milliseconds. */
export function retentionMsOf(state: Readonly<Config['state']>): number {
  const seconds = parseDurationSeconds(state.retention);
  if (seconds === null) throw new Error(`state.retention: "${state.retention}" is not a duration such as "90 days"`);
  return seconds * 1000;
}

/** The state store the config asks for: PostgreSQL when `state.postgres` is set, else the embedded file store under `state.dir`. */
export async function openStateStore(config: Readonly<Config>, log: Logger, now: () => number): Promise<StateStore> {
  const { remediation, state } = config;
  const common = {
    retentionMs: retentionMsOf(state),
    cooldownMs: remediation.cooldownSeconds * 1000,
    failureWindowMs: remediation.circuitBreaker.windowSeconds * 1000,
    log, now,
  };
  if (state.postgres) return PostgresStore.open({ ...common, url: state.postgres.url, schema: state.postgres.schema, timeoutMs: state.postgres.timeoutSeconds * 1000 });
  return FileStore.open({ ...common, dir: state.dir });
}
