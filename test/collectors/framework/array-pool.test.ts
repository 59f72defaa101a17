import t from 'tap';
import { ArrayPool } from '../../../src/collectors/framework/array-pool.js';

t.test('arrays given back are taken again: the closest fit, as a view of exactly the length asked', (t) => {
  const pool = new ArrayPool();
  const first = pool.borrow();
  const big = first.take(1000);
  const small = first.take(100);
  t.equal(big.length, 1000);
  t.equal(small.length, 100);
  t.equal(pool.size, 0, 'taken arrays are not in the pool');
  first.giveBack();
  t.equal(pool.size, 2);

  const second = pool.borrow();
  const again = second.take(90);
  t.equal(again.length, 90, 'exactly the length asked');
  t.equal(again.buffer, small.buffer, 'the smaller of the two that fit');
  t.equal(second.take(1000).buffer, big.buffer);
  t.not(second.take(1000).buffer, big.buffer, 'a second request while the first is out gets a new array');
  second.giveBack();
  t.equal(pool.size, 3);
  t.end();
});

t.test('an array far longer than asked is not handed out, and one unused for two collections is dropped', (t) => {
  const pool = new ArrayPool();
  const borrowed = pool.borrow();
  const big = borrowed.take(10_000);
  borrowed.giveBack();
  const small = pool.borrow().take(100);
  t.not(small.buffer, big.buffer, 'a request under a quarter of the array gets its own');
  t.equal(small.length, 100);
  pool.sweep();
  pool.sweep();
  t.equal(pool.size, 1, 'kept through two collections');
  pool.sweep();
  t.equal(pool.size, 0, 'dropped after the third without use');
  t.end();
});

t.test('at most 64 arrays wait in the pool', (t) => {
  const pool = new ArrayPool();
  const borrowed = pool.borrow();
  for (let i = 0; i < 100; i += 1) borrowed.take(10);
  borrowed.giveBack();
  t.equal(pool.size, 64);
  borrowed.giveBack();
  t.equal(pool.size, 64, 'giving back twice gives nothing more');
  t.end();
});
