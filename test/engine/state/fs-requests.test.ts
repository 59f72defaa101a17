import { open } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { FileSink, LineWriter } from '../../../src/engine/state/line-writer.js';
import { tempDir } from '../../http/helpers.js';
import { besidesFsyncs, fsRequestsDuring } from './fs-requests.js';

t.test('the requests are named by the fs call that made them, and fsyncs can be set apart', async (t) => {
  const dir = await tempDir(t, 'upkeep-fs-requests-');
  const handle = await open(join(dir, 'file'), 'a');
  const calls = await fsRequestsDuring(async () => {
    await handle.write('x');
    await handle.datasync();
  });
  await handle.close();
  t.same(calls, ['write', 'fdatasync']);
  t.same(besidesFsyncs(calls), ['write']);
});

t.test('a line whose fsync starts at once (no spacing, as when the last fsync took longer than it) counts no write', async (t) => {
  const dir = await tempDir(t, 'upkeep-fs-requests-');
  const writer = new LineWriter(new FileSink(join(dir, 'events.jsonl')), { syncSpacingMs: 0 });
  await writer.enqueue('one').durable;
  const calls = await fsRequestsDuring(async () => { await writer.enqueue('two').written; });
  await writer.close();
  t.same(calls, ['fdatasync'], 'the fsync is made before the write is acknowledged');
  t.same(besidesFsyncs(calls), []);
});
