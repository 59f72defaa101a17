import { appendFile, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { tempDir } from '../../http/helpers.js';
import { besidesFsyncs, fsRequestsDuring } from './fs-requests.js';
import { finished, openJournal, queued, T0 } from './journal-fixture.js';

t.test('a run whose lines span a rotation appears once, with the state of its last line', async (t) => {
  const dir = await tempDir(t);
  const journal = await openJournal(t, dir, { segmentRuns: 3, sealGraceMs: 0 });
  const long = queued(T0);
  await journal.append(long).durable;
  const running = { ...long, status: 'running' as const, startedAt: long.queuedAt };
  await journal.append(running).durable;
  for (let n = 1; n <= 7; n += 1) await journal.append(finished(queued(T0 + n), 'success', T0 + n)).durable;
  t.same((await journal.list({ status: 'running' }, null, 10)).runs.map((run) => run.id), [long.id], 'still running, from a sealed segment');
  await journal.append(finished(running, 'success', T0 + 100)).durable;
  t.ok((await readdir(dir)).filter((name) => name.endsWith('.idx')).length >= 2);
  const page = await journal.list({}, null, 100);
  t.equal(page.runs.filter((run) => run.id === long.id).length, 1, 'once');
  t.equal(page.runs.at(-1)?.status, 'success', 'in its place (oldest), with its final state');
  t.same((await journal.list({ status: 'running' }, null, 10)).runs, [], 'its older running line is not its state');
  t.equal((await journal.get(long.id))?.status, 'success');
});

t.test('a torn last line after a crash is skipped and the next line starts on its own', async (t) => {
  const dir = await tempDir(t);
  const journal = await openJournal(t, dir);
  const before = finished(queued(T0), 'success', T0);
  await journal.append(before).durable;
  await journal.close();
  const [segment] = (await readdir(dir)).filter((name) => name.endsWith('.jsonl'));
  await appendFile(join(dir, segment ?? ''), '{"id":"torn","remediation":"postgres.vac');

  const reopened = await openJournal(t, dir);
  t.same(reopened.skipped, [{ file: join(dir, segment ?? ''), lines: 1 }]);
  const after = finished(queued(T0 + 1), 'success', T0 + 1);
  await reopened.append(after).durable;
  t.same((await reopened.list({}, null, 10)).runs, [after, before]);
  const lines = (await readFile(join(dir, segment ?? ''), 'utf8')).split('\n');
  t.equal(lines[1], '{"id":"torn","remediation":"postgres.vac\t', 'the torn line stays on its own line, ended so that it never reads as a record');
  t.same(JSON.parse(lines[2] ?? ''), after);
});

t.test('a batch is written in place: appending a line to the open segment starts no request in the thread pool', async (t) => {
  const dir = await tempDir(t);
  const journal = await openJournal(t, dir);
  await journal.append(queued(T0)).durable;
  const requests = await fsRequestsDuring(async () => { await journal.append(queued(T0 + 1)).written; });
  t.same(besidesFsyncs(requests), [], `no request but an fsync (requests: ${requests.join(', ') || 'none'})`);
  t.equal((await journal.list({}, null, 10)).runs.length, 2);
});
