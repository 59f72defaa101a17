import t from 'tap';
import { releaseYoungGeneration } from '../src/young-generation.js';

// The installed package's behaviour is tested in test/product/young-generation.test.ts.
t.test('releases the young generation only when bin/upkeep.js held it, and once', async (t) => {
  t.equal(releaseYoungGeneration(), false, 'not held: nothing to release');
  Reflect.set(globalThis, Symbol.for('upkeep.youngGenerationHeld'), true);
  t.equal(releaseYoungGeneration(), true);
  t.equal(Reflect.get(globalThis, Symbol.for('upkeep.youngGenerationHeld')), undefined);
  t.equal(releaseYoungGeneration(), false, 'released once');
});
