import t from 'tap';
import { ReadAtMostEvery } from '../../../src/collectors/framework/read-at-most-every.js';

/** A reading whose reads are counted and numbered, on a clock the test moves. */
function counted(intervalSeconds: number) {
  let nowMs = 1_000;
  const given: (number | undefined)[] = [];
  const reading = new ReadAtMostEvery<number>(intervalSeconds, () => nowMs);
  const read = async (last: number | undefined) => { given.push(last); return given.length; };
  return { reading, read, given, advance: (ms: number) => { nowMs += ms; } };
}

t.test('the last value is given out until the interval has passed since its read started', async (t) => {
  const { reading, read, given, advance } = counted(60);
  t.equal(await reading.get(read), 1, 'the first call reads');
  advance(59_999);
  t.equal(await reading.get(read), 1, 'within the interval: the last value, no read');
  advance(1);
  t.equal(await reading.get(read), 2, 'at the interval: read again');
  t.same(given, [undefined, 1], 'each read is given the value before it');
});

t.test('0 reads every time', async (t) => {
  const { reading, read, given } = counted(0);
  t.same([await reading.get(read), await reading.get(read), await reading.get(read)], [1, 2, 3]);
  t.same(given, [undefined, 1, 2]);
});

t.test('a failed read fails its caller, is not covered by the last value, and the next call reads again', async (t) => {
  const { reading, read, advance } = counted(10);
  t.equal(await reading.get(read), 1);
  advance(10_000);
  await t.rejects(reading.get(async () => { throw new Error('statement timeout'); }), { message: 'statement timeout' });
  t.equal(await reading.get(read), 2, 'read again, not the value from before the failure');
  advance(9_999);
  t.equal(await reading.get(read), 2, 'and kept for its interval');
});
