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
