import { appendFile, mkdir, readdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { z } from 'zod';
import { newRunId } from '../../../src/engine/state/run-id.js';
import { tempDir } from '../../http/helpers.js';
import { allPages, clock, finished, openJournal, queued, T0 } from './journal-fixture.js';

t.test('retention removes whole old segments (never the newest sealed one) at maintenance', async (t) => {
  const dir = await tempDir(t);
  const time = clock();
  const day = 86_400_000;
  const journal = await openJournal(t, dir, { segmentRuns: 2, sealGraceMs: 0, now: time.now, retentionMs: 10 * day });
  const old = [0, 1, 2, 3].map((n) => finished(queued(T0 + n), 'success', T0 + n));
  for (const record of old) await journal.append(record).durable;
  time.set(T0 + 20 * day);
  const recent = [0, 1, 2, 3, 4].map((n) => finished(queued(T0 + 20 * day + n), 'success', T0 + 20 * day + n));
  for (const record of recent) await journal.append(record).durable;
  const segmentsBefore = (await readdir(dir)).filter((name) => name.endsWith('.jsonl')).length;
  await journal.maintain();
  const after = await readdir(dir);
  t.equal(after.filter((name) => name.endsWith('.jsonl')).length, segmentsBefore - 2, 'the two old segments went');
  t.equal(after.filter((name) => name.endsWith('.idx')).length, after.filter((name) => name.endsWith('.jsonl')).length - 1, 'each remaining sealed segment kept its index');
  t.equal(await journal.get(old[0]?.id ?? ''), undefined);
  t.same((await allPages(journal, {}, 2)).ids, recent.map((run) => run.id).reverse());

  time.set(T0 + 40 * day);
  await journal.maintain();
  await journal.maintain();
  const idle = await readdir(dir);
  t.ok(idle.filter((name) => name.endsWith('.idx')).length >= 1, 'the newest sealed segment stays, even when old');
});

t.test('lines appended to a segment after it was sealed are indexed again at the next start', async (t) => {
  const dir = await tempDir(t);
  const journal = await openJournal(t, dir, { segmentRuns: 2, sealGraceMs: 0 });
  const records = [0, 1, 2, 3, 4].map((n) => finished(queued(T0 + n), 'success', T0 + n));
  for (const record of records) await journal.append(record).durable;
  await journal.close();
  const late = finished(queued(T0 + 1.5), 'failure', T0 + 2);
  const sealedSegment = join(dir, 'runs-00000001.jsonl');
  const indexed = (await stat(sealedSegment)).size;
  await appendFile(sealedSegment, `${JSON.stringify(late)}\n`);
  const reopened = await openJournal(t, dir, { segmentRuns: 2, sealGraceMs: 0 });
  t.same(await reopened.get(late.id), late, 'found in the re-read segment');
  t.ok((await stat(sealedSegment)).size > indexed);
  t.same((await reopened.list({ status: 'failure' }, null, 10)).runs, [late]);
});

t.test('runs with ids from before time-ordered ids are found by id, in the tail and in sealed segments', async (t) => {
  const dir = await tempDir(t);
  const journal = await openJournal(t, dir, { segmentRuns: 2, sealGraceMs: 0 });
  const legacyIds = ['6f1c3a52-55b4-4c5e-9d8e-0d3c2b1a0f9e', '0b7e1f0a-2c3d-4e5f-8a9b-0c1d2e3f4a5b'];
  const records = [
    finished(queued(T0, { id: legacyIds[0] ?? '' }), 'success', T0),
    finished(queued(T0 + 1), 'success', T0 + 1),
    finished(queued(T0 + 2), 'success', T0 + 2),
    finished(queued(T0 + 3), 'success', T0 + 3),
    finished(queued(T0 + 4, { id: legacyIds[1] ?? '' }), 'success', T0 + 4),
  ];
  for (const record of records) await journal.append(record).durable;
  t.ok((await readdir(dir)).filter((name) => name.endsWith('.idx')).length >= 2, 'the first run sits in a sealed segment');
  t.same(await journal.get(legacyIds[0] ?? ''), records[0], 'in a sealed segment that holds such ids');
  t.same(await journal.get(legacyIds[1] ?? ''), records[4], 'in the tail');
  t.equal(await journal.get('9d2c1b0a-0000-4000-8000-000000000000'), undefined, 'an unknown one is not there');
  t.equal(await journal.get(newRunId(T0 + 99)), undefined, 'nor a time-ordered id later than every segment');
});

t.test('a segment removed under a running journal is dropped at the next look', async (t) => {
  const dir = await tempDir(t);
  const journal = await openJournal(t, dir, { segmentRuns: 2, sealGraceMs: 60_000 });
  const records = [0, 1, 2].map((n) => finished(queued(T0 + n), 'success', T0 + n));
  for (const record of records) await journal.append(record).durable;
  const [first] = (await readdir(dir)).filter((name) => name.endsWith('.jsonl')).sort();
  await unlink(join(dir, first ?? ''));
  t.same((await journal.list({}, null, 10)).runs, [records[2]], 'only the runs of the segment left');
});

t.test('a journal whose directory does not exist yet is empty, and creates nothing until the first run', async (t) => {
  const dir = join(await tempDir(t), 'journal');
  const journal = await openJournal(t, dir);
  t.same(await journal.list({}, null, 10), { runs: [], next: null });
  t.equal(await journal.get(newRunId(T0)), undefined);
  await journal.maintain();
  await t.rejects(readdir(dir), { code: 'ENOENT' });
  const record = finished(queued(T0), 'success', T0);
  await journal.append(record).durable;
  t.same(await journal.get(record.id), record);
});

t.test('segments beside a journal from before segments are from a migration that did not finish: removed', async (t) => {
  const dir = await tempDir(t);
  await mkdir(dir, { recursive: true });
  const legacy = finished(queued(T0), 'success', T0);
  await writeFile(join(dir, 'runs.jsonl'), `${JSON.stringify(legacy)}\n`);
  await writeFile(join(dir, 'runs-00000001.jsonl'), `${JSON.stringify(legacy)}\n`);
  await writeFile(join(dir, 'notes.txt'), 'kept');
  const journal = await openJournal(t, dir);
  t.same((await readdir(dir)).sort(), ['notes.txt', 'runs.jsonl'], 'the half-made segment went, the rest stays');
  t.same(await journal.list({}, null, 10), { runs: [], next: null }, 'nothing is listed before the old journal is read');
});

t.test('a writer looks at the files at most once a second between batches: a rotation by another process is followed by then, lines written before it land in the rotated segment within its grace, and readers see them all', async (t) => {
  const dir = await tempDir(t);
  const first = await openJournal(t, dir, { segmentRuns: 2, sealGraceMs: 60_000 });
  const second = await openJournal(t, dir, { segmentRuns: 2, sealGraceMs: 60_000 });
  const records = [0, 1, 2, 3, 4].map((n) => finished(queued(T0 + n), 'success', T0 + n));
  const [r1, r2, r3, r4, r5] = records;
  if (!r1 || !r2 || !r3 || !r4 || !r5) throw new Error('five records');
  // Written, not waited on for their fsync: the second writer's look at its start must stay under a second old.
  await first.append(r1).written;
  await first.append(r2).written;
  await first.append(r3).written;
  t.same((await readdir(dir)).filter((name) => name.endsWith('.jsonl')).sort(), ['runs-00000001.jsonl', 'runs-00000002.jsonl'], 'the first writer rotated at two runs');
  const linesOf = async (name: string) => (await readFile(join(dir, name), 'utf8')).split('\n').filter(Boolean).map((text) => z.object({ id: z.string() }).parse(JSON.parse(text)).id);
  await second.append(r4).durable;
  t.same(await linesOf('runs-00000001.jsonl'), [r1.id, r2.id, r4.id], 'the second writer, which last looked at its start, appended to the rotated segment: a late append');
  await new Promise((resolve) => setTimeout(resolve, 1100));
  await second.append(r5).durable;
  t.same(await linesOf('runs-00000002.jsonl'), [r3.id, r5.id], 'a second later it looked first, and followed the rotation');
  for (const journal of [first, second]) {
    t.same((await journal.list({}, null, 10)).runs.map((run) => run.id), [r5.id, r4.id, r3.id, r2.id, r1.id], 'every run is read, the late one included');
  }
});
