// Runs one backup action in its own process, as `upkeep run` would, so a test can measure its RSS
// or kill it with SIGKILL mid-dump. Usage: backup-child.ts CONFIG ACTION PARAMS_JSON
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { pgDump } from '../../src/remediation/backup.js';
import { backupVerify } from '../../src/remediation/backup-verify.js';
import { Connections } from '../../src/remediation/connections.js';
import type { ActionContext, AnyAction } from '../../src/remediation/types.js';
import { perform } from './context.js';

const [file, name, params] = process.argv.slice(2);
const actions: Record<string, AnyAction> = { 'backup.pg_dump': pgDump, 'backup.verify': backupVerify };
const action = actions[name ?? ''];
if (!file || !action) throw new Error('usage: backup-child.ts CONFIG ACTION PARAMS_JSON');
const config = await loadConfig(file, {});
const connections = new Connections(config);
const context: ActionContext = {
  config, connections, log: createLogger({ destination: process.stderr }), signal: new AbortController().signal, deadline: Date.now() + 3_600_000,
};
const result = await perform(action, JSON.parse(params ?? '{}'), context);
await connections.close();
process.stdout.write(`${JSON.stringify({ output: result.output.detail, verification: result.verification })}\n`);
