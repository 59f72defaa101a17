import t from 'tap';
import { ClaimTable, kthSmallest } from '../../../src/engine/state/claim-table.js';
import { claimKey } from '../../../src/engine/state/guard-file.js';
import { newRunId } from '../../../src/engine/state/run-id.js';

// A fixed sequence, so a failure can be replayed.
function numbers(count: number, seed: number): Float64Array {
  let state = seed;
  return Float64Array.from({ length: count }, () => {
    state = (state * 48_271) % 2_147_483_647;
    return state % 1000;
  });
}

t.test('kthSmallest agrees with a sort, duplicates and edges included', async (t) => {
  for (const [count, seed] of [[1, 1], [2, 2], [7, 3], [1000, 4], [4096, 5]] as const) {
    const values = numbers(count, seed);
    const sorted = [...values].sort((a, b) => a - b);
    for (const k of [0, Math.floor(count / 3), count - 1]) t.equal(kthSmallest(values.slice(), k), sorted[k], `${count} values, k = ${k}`);
  }
  t.equal(kthSmallest(Float64Array.from([5, 5, 5, 5]), 2), 5, 'all equal');
});

t.test('prune to a limit keeps the newest; ties at the cut go together; ids that are not UUIDs go too', async (t) => {
  const table = new ClaimTable();
  // Times 0..99, each twice: 200 claims.
  for (let n = 0; n < 200; n += 1) table.add(claimKey(`alert ${n}`), n === 0 ? 'not-a-uuid' : newRunId(n), Math.floor(n / 2));
  table.prune(-1, 150);
  t.equal(table.size, 150, 'the 50 oldest went (times 0..24, two each)');
  t.equal(table.get(claimKey('alert 0')), undefined, 'the claim with an id that is no UUID went with them');
  t.equal(table.get(claimKey('alert 49')), undefined);
  t.ok(table.get(claimKey('alert 50')), 'the oldest kept is at time 25');
  table.prune(-1, 149);
  t.equal(table.size, 148, 'a cut between two claims of the same time drops both');
  t.same(table.list().map((claim) => claim.at).slice(0, 2), [26, 26]);
  for (let n = 200; n < 300; n += 1) table.add(claimKey(`alert ${n}`), newRunId(n), 1000 + n);
  t.equal(table.size, 248, 'claims are added again in the slots pruning freed');
  t.ok(table.get(claimKey('alert 299')));
  table.prune(1200, 1000);
  t.equal(table.size, 100, 'under the limit, only claims older than the horizon go');
});

t.test('growth keeps every claim findable, and so does rebuilding a table full of deleted slots', async (t) => {
  const table = new ClaimTable();
  const runIds = Array.from({ length: 3000 }, (_, n) => newRunId(n));
  runIds.forEach((runId, n) => table.add(claimKey(`alert ${n}`), runId, n));
  for (let round = 0; round < 5; round += 1) {
    for (let n = 0; n < 3000; n += 1) table.delete(claimKey(`alert ${n}`));
    runIds.forEach((runId, n) => table.add(claimKey(`alert ${n}`), runId, n));
  }
  t.equal(table.size, 3000);
  let found = 0;
  runIds.forEach((runId, n) => { if (table.get(claimKey(`alert ${n}`)) === runId) found += 1; });
  t.equal(found, 3000);
});
