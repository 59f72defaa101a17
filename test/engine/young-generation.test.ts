import t from 'tap';
import { BUSY_RUNS_PER_SECOND, QUIET_SECONDS, YoungGeneration, releaseOf } from '../../src/engine/young-generation.js';
import { bufferLogger } from '../fixtures/log.js';

const HOLD = '--semi-space-growth-factor=1 --heap-growing-percent=50';
const RELEASE = '--semi-space-growth-factor=2 --heap-growing-percent=0';

function policy(hold: string | null = HOLD) {
  const flags: string[] = [];
  const logger = bufferLogger('debug');
  const young = new YoungGeneration({ hold, setFlags: (set) => flags.push(set), log: logger.log });
  const second = (runs: number) => {
    for (let run = 0; run < runs; run += 1) young.admit();
    young.tick();
  };
  return { young, flags, second, messages: () => logger.lines().map((line) => line.msg) };
}

t.test('a busy second lets V8 grow the heap as it would by default; it is held again after QUIET_SECONDS quiet ones', async (t) => {
  const { flags, second, messages } = policy();
  second(BUSY_RUNS_PER_SECOND - 1);
  t.same(flags, [], 'a second just under the rate changes nothing');
  second(BUSY_RUNS_PER_SECOND);
  t.same(flags, [RELEASE], 'released at the rate');
  second(5_000);
  t.same(flags, [RELEASE], 'set once while it stays busy');
  for (let quiet = 1; quiet < QUIET_SECONDS; quiet += 1) second(BUSY_RUNS_PER_SECOND - 1);
  second(BUSY_RUNS_PER_SECOND);
  t.equal(flags.length, 1, 'a busy second before the quiet ones add up starts the count again');
  for (let quiet = 1; quiet < QUIET_SECONDS; quiet += 1) second(0);
  t.equal(flags.length, 1, `still released after ${QUIET_SECONDS - 1} quiet seconds`);
  second(0);
  t.same(flags, [RELEASE, HOLD], 'held again after the last of them');
  t.same(messages(), ['runs are admitted fast: V8 may grow the heap as it would by default', 'runs are admitted slowly again: the heap\'s growth is held']);
});

t.test('apply() sets the current state again (V8 resets the flag when the executor thread starts)', async (t) => {
  const { young, flags, second } = policy();
  young.apply();
  second(BUSY_RUNS_PER_SECOND);
  young.apply();
  t.same(flags, [HOLD, RELEASE, RELEASE]);
});

t.test('without the hold (the user sized the young generation, or no bin/upkeep.js) nothing is ever set', async (t) => {
  const { young, flags, second } = policy(null);
  young.start();
  second(BUSY_RUNS_PER_SECOND * 10);
  young.apply();
  young.stop();
  t.same(flags, []);
});

t.test('start() ticks once a second until stop()', async (t) => {
  const { young, flags } = policy();
  young.start();
  young.start();
  for (let run = 0; run < BUSY_RUNS_PER_SECOND; run += 1) young.admit();
  await new Promise((resolve) => setTimeout(resolve, 1100));
  young.stop();
  t.same(flags, [RELEASE], 'the busy second was counted by the timer');
});

t.test('each held flag is released to V8\'s own value, whichever of them bin/upkeep.js set (a user keeps the ones they set)', async (t) => {
  t.equal(releaseOf(HOLD), RELEASE);
  t.equal(releaseOf('--semi-space-growth-factor=1'), '--semi-space-growth-factor=2', 'the user set the old generation\'s growth');
  t.equal(releaseOf('--heap-growing-percent=50'), '--heap-growing-percent=0', 'the user sized the young generation');
  t.equal(releaseOf('--some-other-flag=3'), '--some-other-flag=3', 'a flag it does not know is left as it is');
});
