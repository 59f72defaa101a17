import { appendFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { z } from 'zod';
import { Engine } from '../../src/engine/engine.js';
import type { Action } from '../../src/actions/contract.js';
import { smallDisk } from '../fixtures/small-disk.js';
import { waitFor } from '../fixtures/ports.js';
import { capturedLogger, testConfig } from '../http/helpers.js';

const { dir, skip, unmount } = await smallDisk('256k');
t.teardown(unmount);

/**
 * Fills the disk while it runs, and the journal's last page with blank lines (which readers
 * skip): a tmpfs gives an append room up to the end of the file's last page, so the run's final
 * line needs a new page, and is refused.
 */
const filling: Action<Record<string, never>> = {
  name: 'test.fill', description: 'fills the disk', params: z.strictObject({}), risk: () => 'safe',
  resolve: async (params) => params, lock: () => ({ kind: 'local', key: 'fill' }),
  check: async () => ({ proceed: true, reason: 'go' }),
  plan: async () => ({ steps: [{ kind: 'exec', detail: 'fill the disk' }], payload: {} }),
  run: async () => {
    await writeFile(join(dir, 'filler'), Buffer.alloc(1024 * 1024)).catch(() => undefined);
    // Every test's state directory is on the disk: each journal's segments get their page filled.
    for (const state of await readdir(dir)) {
      const journal = join(dir, state, 'journal');
      for (const segment of (await readdir(journal).catch(() => [])).filter((name) => name.endsWith('.jsonl'))) {
        await appendFile(join(journal, segment), '\n'.repeat(4096)).catch(() => undefined);
      }
    }
    return { detail: {} };
  },
  verify: async () => ({ ok: true, detail: 'fine' }),
};

t.test('a final line the journal refused (a full disk) is written once there is room: the run is not left running, nor journalled interrupted at the next start', { skip }, async (t) => {
  const config = testConfig({ state: { dir: join(dir, 'state') } });
  const captured = capturedLogger('info');
  const engine = await Engine.create({ config, log: captured.log, actions: [filling], journalRetryMs: 50 });
  t.teardown(() => engine.close());
  const submitted = engine.submit({ remediation: 'test.fill', params: {}, trigger: 'manual' });
  t.equal(await submitted.journalled, 'queued');
  t.equal((await submitted.done).status, 'success');
  t.equal((await engine.get(submitted.runId))?.status, 'running', 'its final line was refused');
  t.match(captured.text(), new RegExp(`"level":50.*"runId":"${submitted.runId}".*"msg":"cannot write the journal"`));
  // Offered again every 50 ms while the disk is still full: refused each time, quietly.
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.equal((await engine.get(submitted.runId))?.status, 'running', 'still refused while the disk is full');

  await rm(join(dir, 'filler'));
  await waitFor('the final line to be written', async () => {
    const status = (await engine.get(submitted.runId))?.status;
    if (status !== 'success') throw new Error(`status ${status ?? 'none'}`);
  });
  t.match(captured.text(), /"level":30.*"runs":1,"waiting":0,"msg":"the journal took final lines it had refused"/);
  await engine.close();
  const again = await Engine.create({ config, log: capturedLogger('info').log, actions: [filling] });
  t.teardown(() => again.close());
  t.equal((await again.get(submitted.runId))?.status, 'success', 'after a restart, as it ended');
});

t.test('at shutdown, the final lines still refused get a last try', { skip }, async (t) => {
  const config = testConfig({ state: { dir: join(dir, 'shutdown') } });
  const captured = capturedLogger('info');
  const engine = await Engine.create({ config, log: captured.log, actions: [filling] });
  t.teardown(() => engine.close());
  const journal = join(dir, 'shutdown', 'journal');
  // As above, with the journal of this state dir.
  const submitted = engine.submit({ remediation: 'test.fill', params: {}, trigger: 'manual' });
  t.equal((await submitted.done).status, 'success');
  t.ok((await readdir(journal)).length > 0);
  t.equal((await engine.get(submitted.runId))?.status, 'running', 'its final line was refused');
  await rm(join(dir, 'filler'));
  // The next try is 5 s away; closing makes one now.
  await engine.close();
  t.match(captured.text(), /"msg":"the journal took final lines it had refused"/);
  const again = await Engine.create({ config, log: capturedLogger('info').log, actions: [filling] });
  t.teardown(() => again.close());
  t.equal((await again.get(submitted.runId))?.status, 'success');
});
