import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { tempDir } from '../../http/helpers.js';
import { finished, openJournal, queued, T0 } from './journal-fixture.js';

t.test('pages stop at about 4 MiB of lines, and the cursor carries on', async (t) => {
  const dir = await tempDir(t);
  const journal = await openJournal(t, dir);
  const big = 'x'.repeat(1024 * 1024);
  const ids: string[] = [];
  for (let n = 0; n < 6; n += 1) {
    const record = finished(queued(T0 + n, { params: { big } }), 'success', T0 + n);
    ids.push(record.id);
    await journal.append(record).durable;
  }
  const first = await journal.list({}, null, 100);
  t.equal(first.runs.length, 4, 'four 1 MiB runs make a page');
  t.not(first.next, null);
  const second = await journal.list({}, first.next, 100);
  t.same([...first.runs, ...second.runs].map((run) => run.id), ids.reverse());
  t.equal(second.next, null);
});

t.test('pages walk sealed segments newest first, skip those the filter cannot match, and more than four wait their turn', async (t) => {
  const dir = await tempDir(t);
  const journal = await openJournal(t, dir, { segmentRuns: 4, sealGraceMs: 0 });
  const records = Array.from({ length: 20 }, (_, n) => finished(queued(T0 + n * 1000, { remediation: n < 8 ? 'redis.bgsave' : 'postgres.vacuum' }), 'success', T0 + n * 1000));
  for (const record of records) await journal.append(record).durable;
  const newestFirst = records.map((record) => record.id).reverse();
  const pages = await Promise.all(Array.from({ length: 7 }, () => journal.listJson({}, null, 20)));
  for (const page of pages) t.same(page.runs.map((line) => (JSON.parse(line) as { id: string }).id), newestFirst);
  const bgsaves = await journal.list({ remediation: 'redis.bgsave' }, null, 3);
  t.same(bgsaves.runs.map((run) => run.id), newestFirst.slice(12, 15), 'the newest bgsaves, from the older segments');
  t.ok(bgsaves.next);
  const rest = await journal.list({ remediation: 'redis.bgsave' }, bgsaves.next, 10);
  t.same(rest, { runs: records.slice(0, 5).reverse(), next: null });
  t.same(await journal.list({ remediation: 'docker.prune' }, null, 10), { runs: [], next: null }, 'no segment holds one');
});

t.test('a line is checked when first read; read again it is not parsed again, until 2,000 other lines have been read since', async (t) => {
  const dir = await tempDir(t);
  const journal = await openJournal(t, dir);
  const records = Array.from({ length: 3 }, (_, n) => finished(queued(T0 + n * 1000), 'success', T0 + n * 1000));
  for (const record of records) await journal.append(record).durable;
  const ids = (page: { runs: string[] }) => page.runs.map((line) => (JSON.parse(line) as { id: string }).id);
  const newestFirst = records.map((record) => record.id).reverse();
  t.same(ids(await journal.listJson({}, null, 10)), newestFirst);

  // The middle run's final line, changed in place to a status no record has (same length): a
  // journal line never changes once written, so this stands for a disk that went bad under it.
  const [file = ''] = (await readdir(dir)).filter((name) => name.endsWith('.jsonl'));
  const text = await readFile(join(dir, file), 'utf8');
  const at = text.lastIndexOf(`"id":"${records[1]?.id}"`);
  const status = text.indexOf('"status":"success"', at);
  await writeFile(join(dir, file), `${text.slice(0, status)}"status":"sXccess"${text.slice(status + 18)}`);
  t.same(ids(await journal.listJson({}, null, 10)), newestFirst, 'checked when first read: passed on as read');
  t.same((await journal.list({}, null, 10)).runs.map((run) => run.id), [records[2]?.id, records[0]?.id], 'list() parses each record, and leaves out one that is not');
  const fresh = await openJournal(t, dir);
  t.same(ids(await fresh.listJson({}, null, 10)), [records[2]?.id, records[0]?.id], 'another process checks it, and leaves it out');

  const more = Array.from({ length: 2000 }, (_, n) => finished(queued(T0 + 10_000 + n), 'success', T0 + 10_000 + n));
  await Promise.all(more.map((record) => journal.append(record).durable));
  let cursor: string | null = null;
  let read = 0;
  do {
    const page = await journal.listJson({}, cursor, 1000);
    read += page.runs.length;
    cursor = page.next;
  } while (cursor !== null);
  t.equal(read, 2002, 'every line but the changed one: the walk past 2,000 others checked it again');
  t.same(ids(await journal.listJson({}, null, 3)), more.slice(-3).map((record) => record.id).reverse());
});
