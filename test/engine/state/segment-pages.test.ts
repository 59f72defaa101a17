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
