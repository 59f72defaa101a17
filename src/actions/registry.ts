import { analyze, vacuum } from './postgres.js';
import { reindex } from './postgres-reindex.js';
import { terminateIdle } from './postgres-terminate.js';
import { retention } from './postgres-retention.js';
import { pgDump } from './backup.js';
import { backupVerify } from './backup-verify.js';
import { dockerPrune } from './docker.js';
import { filesCleanup } from './files-cleanup.js';
import { logsRotate } from './logs-rotate.js';
import { bgsave } from './redis-bgsave.js';
import { memoryPurge } from './redis-memory-purge.js';
import { expireKeys } from './redis-keys.js';
import { slowlogReset } from './redis-slowlog-reset.js';
import type { AnyAction } from './contract.js';

/** Every remediation upkeep knows. Adding a family is one file in src/actions/ and its two lines here (docs/development.md). */
export const ACTIONS: readonly AnyAction[] = [
  vacuum,
  analyze,
  reindex,
  retention,
  terminateIdle,
  bgsave,
  memoryPurge,
  expireKeys,
  slowlogReset,
  dockerPrune,
  logsRotate,
  filesCleanup,
  pgDump,
  backupVerify,
];
