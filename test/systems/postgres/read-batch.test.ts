import t from 'tap';
import { ReadBatch } from '../../../src/systems/postgres/read-batch.js';

/** A read the test answers by hand: each call is kept with the keys it was given. */
function manualReads() {
  const calls: { keys: string[]; answer: (values: Record<string, number>) => void; fail: (err: Error) => void }[] = [];
  const batch = new ReadBatch<string, number>((keys) => new Promise((resolve, reject) => {
    calls.push({ keys, answer: (values) => resolve(new Map(Object.entries(values))), fail: reject });
  }), () => -1);
  return { batch, calls };
}

const settled = () => new Promise((resolve) => setImmediate(resolve));

t.test('a request with no read in flight starts one at once; those asked meanwhile share the next one, which starts after they asked', async (t) => {
  const { batch, calls } = manualReads();
  const first = batch.get('a');
  t.same(calls.map((call) => call.keys), [['a']], 'no wait when nothing is in flight');
  const waiting = [batch.get('b'), batch.get('c'), batch.get('b'), batch.get('a')];
  await settled();
  t.equal(calls.length, 1, 'nothing more is read while a read is in flight');
  calls[0]?.answer({ a: 1 });
  t.equal(await first, 1);
  await settled();
  t.same(calls.map((call) => call.keys), [['a'], ['b', 'c', 'a']], 'one read for everything asked meanwhile, each key once');
  calls[1]?.answer({ a: 10, b: 20 });
  t.same(await Promise.all(waiting), [20, -1, 20, 10], "'a' asked again during the first read gets the second read's answer; a key the read left out gets missing()");
  t.equal(calls.length, 2, 'idle again');
  const later = batch.get('c');
  calls[2]?.answer({ c: 30 });
  t.equal(await later, 30, 'the next request starts a read at once again');
});

t.test('a failed read fails only its own callers; the next one goes ahead', async (t) => {
  const { batch, calls } = manualReads();
  const first = batch.get('a');
  const second = batch.get('b');
  calls[0]?.fail(new Error('connection refused'));
  await t.rejects(first, { message: 'connection refused' });
  await settled();
  t.same(calls[1]?.keys, ['b'], 'the caller waiting behind the failed read has a read of its own');
  calls[1]?.answer({ b: 2 });
  t.equal(await second, 2);
});

t.test('with maxAgeMs, an answer is given again while its read started at most that long ago, and only then', async (t) => {
  let now = 1000;
  const calls: string[][] = [];
  const batch = new ReadBatch<string, number>(async (keys) => {
    calls.push(keys);
    return new Map(keys.map((key) => [key, calls.length]));
  }, () => -1, 100, () => now);
  t.equal(await batch.get('a'), 1, 'the first request reads');
  now = 1100;
  t.equal(await batch.get('a'), 1, 'its read started 100 ms ago: given again, nothing read');
  t.equal(await batch.get('b'), 2, 'another key is read');
  now = 1101;
  t.equal(await batch.get('a'), 3, "101 ms after its read started, 'a' is read again");
  t.equal(await batch.get('b'), 2, "'b', read at 1,100, is given again");
  t.same(calls, [['a'], ['b'], ['a']]);
  t.equal(new ReadBatch<string, number>(async () => new Map(), () => -1).kept, 0);
});

t.test('with maxAgeMs, a failed read is not given again, and answers too old to give are let go', async (t) => {
  let now = 0;
  let fail = true;
  const seen: string[][] = [];
  const batch = new ReadBatch<string, number>(async (keys) => {
    seen.push(keys);
    if (fail) throw new Error('connection refused');
    return new Map(keys.map((key) => [key, 7]));
  }, () => -1, 100, () => now);
  await t.rejects(batch.get('a'), { message: 'connection refused' });
  fail = false;
  t.equal(await batch.get('a'), 7, 'the failure was not kept: read again');
  // Many keys, one at a time, 50 ms apart: each read lets go of what is over 100 ms old.
  for (let n = 0; n < 50; n += 1) {
    now += 50;
    await batch.get(`key${n}`);
  }
  now += 50;
  t.equal(await batch.get('key48'), 7);
  t.equal(seen.length, 52, 'key48, read 100 ms ago, was given again');
  t.equal(batch.kept, 3, 'only the answers of the 100 ms before the last read are kept (key47 to key49), not all 51 keys');
  t.equal(await batch.get('a'), 7);
  t.equal(seen.length, 53, "'a', read 2.5 s ago, was read again");
});
