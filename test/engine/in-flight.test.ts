import t from 'tap';
import { InFlight } from '../../src/engine/in-flight.js';
import { collector, promotedByTwoScavenges, type Collect } from '../fixtures/gc.js';

t.test('holds values by key, and lists, counts and lets go of them', (t) => {
  const held = new InFlight<string, { n: number }>();
  const a = { n: 1 };
  held.set('a', a);
  held.set('b', { n: 2 });
  t.equal(held.get('a'), a);
  t.equal(held.size, 2);
  held.set('a', { n: 3 });
  t.same(held.values(), [{ n: 3 }, { n: 2 }], 'in the order first set, the newer value for a key set again');
  for (const value of held.values()) if (value.n === 3) held.delete('a');
  t.same(held.values(), [{ n: 2 }], 'deleting while walking the copy is safe');
  t.equal(held.delete('a'), false, 'a key already gone');
  t.equal(held.get('a'), undefined);
  held.clear();
  t.equal(held.size, 0);
  t.same(held.values(), []);
  t.end();
});

/**
 * How much reaches the old generation when a value (5,000 small objects, about 200 KB) is held
 * while the container's table is rebuilt, then deleted, then two scavenges run: V8 keeps the old
 * table, with what it held, linked to the new one, and an old table is a root for a scavenge.
 */
function promotedAfterDelete(collect: Collect, container: { set(key: string, value: object): void; delete(key: string): boolean }): number {
  collect();
  for (let i = 0; i < 8; i += 1) container.set(`k${i}`, { i });
  // Two scavenges: the container and its table are in the old generation now, as a server's are.
  collect({ type: 'minor' });
  collect({ type: 'minor' });
  container.set('run', { items: Array.from({ length: 5000 }, (_, i) => ({ i })) });
  // The table grows: the old one is replaced while it holds the run.
  for (let i = 8; i < 40; i += 1) container.set(`k${i}`, { i });
  container.delete('run');
  return promotedByTwoScavenges(collect);
}

t.test('a deleted value is not kept for the old generation by a hash table V8 replaced', (t) => {
  const gc = collector();
  const inFlight = promotedAfterDelete(gc, new InFlight<string, object>());
  const map = promotedAfterDelete(gc, new Map<string, object>());
  // The reason the class exists: with a Map, the deleted run was promoted whole.
  t.ok(map > 150_000, `a Map: ${map} bytes promoted`);
  t.ok(inFlight < 20_000, `InFlight: ${inFlight} bytes promoted (the emptied cells and the tables)`);
  t.end();
});
