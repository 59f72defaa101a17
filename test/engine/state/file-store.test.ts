import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import type { RunRecord } from '../../../src/engine/journal.js';
import { FileStore } from '../../../src/engine/state/file-store.js';
import { newRunId } from '../../../src/engine/state/run-id.js';
import { bufferLogger } from '../../fixtures/log.js';
import { tempDir } from '../../http/helpers.js';

const HOUR = 3_600_000;

t.test('a line the journal cannot write rejects `written` and `durable`; a caller that waits only for `written` (a dry run) leaves no unhandled rejection', async (t) => {
  const dir = await tempDir(t);
  const store = await FileStore.open({ dir, retentionMs: 24 * HOUR, cooldownMs: HOUR, failureWindowMs: HOUR, log: bufferLogger().log, now: Date.now });
  t.teardown(() => store.close().catch(() => undefined));
  // The journal's directory is a file: its first write fails, as on a full or broken disk.
  await writeFile(join(dir, 'journal'), 'not a directory\n');
  const unhandled: unknown[] = [];
  const note = (reason: unknown) => { unhandled.push(reason); };
  process.on('unhandledRejection', note);
  t.teardown(() => { process.off('unhandledRejection', note); });

  const record: RunRecord = { id: newRunId(Date.now()), remediation: 'files.cleanup', trigger: 'alert', status: 'running', params: {}, queuedAt: new Date().toISOString(), dryRun: true };
  const appended = store.append(record);
  await t.rejects(appended.written, { code: /^(EEXIST|ENOTDIR)$/ }, 'the write fails');
  // Node reports an unhandled rejection after the microtasks of the turn it happened in.
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.same(unhandled, [], 'nothing left unhandled by the store');
  await t.rejects(appended.durable, { code: /^(EEXIST|ENOTDIR)$/ }, 'a caller that waits for durability sees the failure too');
});

t.test('a state.dir whose journal cannot be opened stops the open with one error naming the directory, not node\'s own', async (t) => {
  const dir = await tempDir(t);
  // A segment that is a directory: opening it to end a torn line fails, as a root-owned one does for another user.
  await mkdir(join(dir, 'journal', 'runs-00000001.jsonl'), { recursive: true });
  const opening = FileStore.open({ dir, retentionMs: 24 * HOUR, cooldownMs: HOUR, failureWindowMs: HOUR, log: bufferLogger().log, now: Date.now });
  await t.rejects(opening, { name: 'StateStoreError', message: new RegExp(`^state\\.dir: cannot make or write ${dir}: E[A-Z]+: `) });
});
