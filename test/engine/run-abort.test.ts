import t from 'tap';
import { RunAbort } from '../../src/engine/run-abort.js';
import { collector, promotedByTwoScavenges, type Collect } from '../fixtures/gc.js';

t.test('listeners run once, in order, on the first abort; one taken off or added after it does not run', (t) => {
  const abort = new RunAbort();
  const calls: string[] = [];
  abort.onAbort(() => calls.push(`first ${String(abort.reason)}`));
  const off = abort.onAbort(() => calls.push('taken off'));
  abort.onAbort(() => calls.push('second'));
  off();
  off();
  t.equal(abort.listening, 2);
  t.equal(abort.aborted, false);
  t.equal(abort.reason, undefined);
  abort.abort('deadline');
  abort.abort('shutdown');
  t.same(calls, ['first deadline', 'second'], 'the first reason wins');
  t.equal(abort.aborted, true);
  t.equal(abort.reason, 'deadline');
  t.equal(abort.listening, 0, 'nothing is kept once it ran');
  abort.onAbort(() => calls.push('late'));
  t.equal(abort.listening, 0, 'as with an AbortSignal, a listener added after the abort is not called');
  t.end();
});

t.test('its AbortSignal is made on first use and follows it, whether asked for before or after the abort', (t) => {
  const before = new RunAbort();
  const signal = before.signal;
  t.equal(before.signal, signal, 'one signal per abort');
  t.equal(signal.aborted, false);
  before.abort(new Error('deadline of 60s passed'));
  t.equal(signal.aborted, true);
  t.match(signal.reason, { message: 'deadline of 60s passed' });
  const after = new RunAbort();
  after.abort('shutdown');
  t.equal(after.signal.aborted, true);
  t.equal(after.signal.reason, 'shutdown');
  t.end();
});

/** How much reaches the old generation from 2,000 runs that each listened to their abort and are over before the scavenges. */
function promotedBy(collect: Collect, listen: () => () => void): number {
  collect();
  for (let i = 0; i < 2000; i += 1) listen()();
  return promotedByTwoScavenges(collect);
}

t.test('a run that is over leaves nothing for the old generation, where an AbortSignal is promoted however short its life', (t) => {
  const gc = collector();
  const onAbort = () => undefined;
  const signals = promotedBy(gc, () => {
    const { signal } = new AbortController();
    signal.addEventListener('abort', onAbort, { once: true });
    return () => signal.removeEventListener('abort', onAbort);
  });
  const aborts = promotedBy(gc, () => new RunAbort().onAbort(onAbort));
  // The reason the class exists (node 20: an AbortSignal is an EventTarget whose prototype was changed).
  t.ok(signals > 2000 * 150, `AbortSignals: ${signals} bytes promoted`);
  t.ok(aborts < 2000 * 20, `RunAborts: ${aborts} bytes promoted`);
  t.end();
});
