import t from 'tap';
import { TailIndex } from '../../../src/engine/state/tail-index.js';
import { finished, queued, T0 } from './journal-fixture.js';

const line = (record: object) => `${JSON.stringify(record)}\n`;

t.test('lines index their runs: a later line moves the run\'s entry, an out-of-order run is inserted in place', async (t) => {
  const index = new TailIndex();
  // Ids are handed out in order: the earlier run's first.
  const earlier = queued(T0 + 1);
  const first = queued(T0 + 2);
  let offset = 0;
  for (const text of [line(first), line(finished(first, 'success', T0 + 5)), line(earlier), 'not json\n']) {
    index.addLine(Buffer.from(text.slice(0, -1)), offset);
    offset += Buffer.byteLength(text);
  }
  t.same(index.sorted.map((entry) => [entry.id, entry.status]), [[earlier.id, 'queued'], [first.id, 'success']]);
  t.equal(index.inserts, 1, 'the earlier run went in before the first');
  t.equal(index.skippedLines, 1);
  t.equal(index.get(first.id)?.offset, Buffer.byteLength(line(first)), 'the run\'s entry points at its last line');
  t.same(index.unfinished().map((entry) => entry.id), [earlier.id]);
  t.equal(index.runs, 2);
  t.equal(index.lastLineMs, T0 + 5);
});

t.test('this process\'s own batches are indexed from memory when the file grew by exactly them, and read otherwise', async (t) => {
  const [a, b, c] = [queued(T0 + 1), queued(T0 + 2), queued(T0 + 3)];
  const pair = Buffer.from(line(a) + line(b));
  const single = Buffer.from(line(c));
  const index = new TailIndex();
  index.bytes = 100; // what was read before: another process's line, say
  index.wrote(pair);
  index.wrote(single);
  t.equal(index.takeWritten(100 + pair.length + single.length), true);
  const length = (record: object) => Buffer.byteLength(line(record)) - 1;
  t.same(index.sorted.map((entry) => [entry.id, entry.offset, entry.length]), [
    [a.id, 100, length(a)],
    [b.id, 100 + length(a) + 1, length(b)],
    [c.id, 100 + pair.length, length(c)],
  ], 'each line at the offset it has in the file');
  t.equal(index.bytes, 100 + pair.length + single.length);
  t.equal(index.takeWritten(index.bytes), false, 'nothing written since: nothing to take');

  const other = new TailIndex();
  other.wrote(single);
  t.equal(other.takeWritten(single.length + 40), false, 'another process appended too: the caller reads the file');
  t.equal(other.runs, 0);
  t.equal(other.bytes, 0);
  t.equal(other.takeWritten(single.length + 40), false, 'and the batches are forgotten, as the read covers them');
});

t.test('what this process wrote since the last look counts towards the segment\'s limits, each line as a run, until the look', async (t) => {
  const index = new TailIndex();
  const two = Buffer.from(line(queued(T0 + 1)) + line(queued(T0 + 2)));
  index.wrote(two);
  t.equal(index.mayHold(1_000_000, 3), false, 'two lines, under three runs');
  t.equal(index.mayHold(1_000_000, 2), true, 'two lines may be two runs');
  t.equal(index.mayHold(two.length, 1_000), true, 'the bytes count too');
  t.equal(index.mayHold(two.length + 1, 1_000), false);
  t.equal(index.takeWritten(two.length), true);
  t.equal(index.runs, 2);
  t.equal(index.mayHold(1_000_000, 3), false, 'after the look the index counts them, once');
  index.wrote(Buffer.from(line(finished(queued(T0 + 1), 'success', T0 + 3))));
  t.equal(index.mayHold(1_000_000, 3), true, 'a later line of a known run still counts as one more: the bound is on the safe side');
});

t.test('own lines are parsed when written, not at the look: the look only files them (the batch is not kept)', async (t) => {
  const [a, b] = [queued(T0 + 1), queued(T0 + 2)];
  const batch = Buffer.from(line(a) + line(finished(b, 'success', T0 + 9)));
  const index = new TailIndex();
  index.wrote(batch);
  t.same(index.sorted, [], 'nothing is filed before the look');
  batch.fill(0x20, 0, batch.length - 1); // the caller's buffer, reused: what the index took from it must not change
  t.equal(index.takeWritten(batch.length), true);
  t.same(index.sorted.map((entry) => [entry.id, entry.status]), [[a.id, 'queued'], [b.id, 'success']]);
  t.equal(index.skippedLines, 0);
  t.equal(index.lastLineMs, T0 + 9);
  t.equal(index.bytes, batch.length);
});
