import t, { type Test } from 'tap';
import { z } from 'zod';
import { PROBE_DEADLINE_MS, probeInstalled } from './probe.js';
import type { Served } from './installed.js';
import { BUSY_RUNS_PER_SECOND } from '../../src/engine/young-generation.js';
import { webhookPayload } from '../fixtures/webhook-payload.js';
import { dryRunSettings, oneDryRun, postAlerts } from './runs.js';

/**
 * bin/upkeep.js holds V8's young generation at its initial size (idle RSS, docs/performance.md
 * "Idle memory"), unless the user sizes it. A probe preloaded into the installed server with
 * `--require` reads the new space's size once /healthz answers, then keeps 40 MB of small objects
 * alive across scavenges (more survives than new space holds, which is what makes V8 grow it) and
 * reads the size again: it has not grown. No timing is involved.
 */
const PROBE = `
const { getHeapSpaceStatistics } = require('node:v8');
const { existsSync, writeFileSync } = require('node:fs');
const newSpace = () => getHeapSpaceStatistics().find((space) => space.space_name === 'new_space').space_size;
// Starts once the test has seen /healthz, so bin/upkeep.js has run (the probe loads before it).
const timer = setInterval(() => {
  if (!existsSync(process.env.PROBE_OUT + '.go')) return;
  clearInterval(timer);
  const before = newSpace();
  const kept = [];
  for (let i = 0; i < 400000; i++) kept.push({ i, text: 'x'.repeat(64) + i });
  const after = newSpace();
  writeFileSync(process.env.PROBE_OUT, JSON.stringify({ before, after, kept: kept.length }));
}, 50);
timer.unref();
`;
const reading = z.object({ before: z.number(), after: z.number(), kept: z.literal(400000) });

async function probe(t: Test, nodeOptions: string): Promise<z.infer<typeof reading>> {
  return reading.parse(JSON.parse(await probeInstalled(t, { targets: { disks: [{ path: '/' }] } }, PROBE, { nodeOptions })));
}

t.test('the installed server keeps a small young generation for its life, even when much survives, and a user\'s size is kept', async (t) => {
  const held = await probe(t, '');
  const sized = await probe(t, '--max-semi-space-size=8');
  t.ok(held.before < sized.before, `after start-up, new space is ${held.before} bytes, against ${sized.before} when start-up may grow it`);
  // Held means it does not grow; V8 may still shrink it (a scavenge while allocation has been slow
  // halved it, 2 MB -> 1 MB, once in a clean-clone CI run).
  t.ok(held.after <= held.before, `serving, it does not grow when 40 MB survive scavenges (they go to the old generation): ${held.before} -> ${held.after} bytes`);
});

/**
 * The old generation's growth: promoted objects that die later (a sliding window of arrays, each
 * kept through a few scavenges) are garbage only a mark-compact frees. V8 starts one when the old
 * generation outgrows what the last one left by a factor, so the same allocations take more of
 * them when the factor is held at 1.5 than when V8 picks it (up to 4). Counted, not timed.
 */
const OLD_GENERATION_PROBE = `
const { PerformanceObserver, constants } = require('node:perf_hooks');
const { existsSync, writeFileSync } = require('node:fs');
const timer = setInterval(() => {
  if (!existsSync(process.env.PROBE_OUT + '.go')) return;
  clearInterval(timer);
  let markCompacts = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) if (entry.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) markCompacts++;
  });
  observer.observe({ entryTypes: ['gc'] });
  const window = [];
  for (let round = 0; round < 80; round++) {
    window.push(Array.from({ length: 50000 }, (_, i) => ({ i, text: 'x' + i })));
    if (window.length > 4) window.shift();
  }
  // gc entries are delivered after the collection's callback: read them a moment later.
  setTimeout(() => { observer.disconnect(); writeFileSync(process.env.PROBE_OUT, JSON.stringify({ markCompacts })); }, 200);
}, 50);
timer.unref();
`;
const collections = z.object({ markCompacts: z.number().int() });

t.test('the installed server holds the old generation\'s growth between mark-compacts, and a user\'s setting is kept', async (t) => {
  const held = collections.parse(JSON.parse(await probeInstalled(t, { targets: { disks: [{ path: '/' }] } }, OLD_GENERATION_PROBE)));
  const own = collections.parse(JSON.parse(await probeInstalled(t, { targets: { disks: [{ path: '/' }] } }, OLD_GENERATION_PROBE, { nodeArgs: ['--heap-growing-percent=0'] })));
  t.ok(held.markCompacts > own.markCompacts, `the same allocations took ${held.markCompacts} mark-compacts held, ${own.markCompacts} with V8's own growth (node --heap-growing-percent=0 bin/upkeep.js, as NODE_OPTIONS refuses the flag)`);
});

t.test('a run starting the executor thread leaves the young generation held (V8 resets the hold for each isolate it makes)', async (t) => {
  const held = reading.parse(JSON.parse(await probeInstalled(t, await dryRunSettings(t), PROBE, { before: (served) => oneDryRun(served.base, 'young-generation-1') })));
  t.ok(held.after <= held.before, `new space does not grow after the thread started, when 40 MB survive scavenges: ${held.before} -> ${held.after} bytes`);
});

t.test('while runs are admitted fast (an alert storm), V8 may grow the young generation again', async (t) => {
  // One payload of that many firing alerts, each its own run; the probe starts once the engine's
  // one-second count has seen them, which only its debug line says (a fixed wait could be too short
  // on a loaded machine).
  const RELEASED = 'runs are admitted fast: V8 may grow the heap as it would by default';
  const storm = async (served: Served) => {
    const template = await webhookPayload({ labels: { alertname: 'DiskUsageHigh' } });
    const [alert] = z.object({ alerts: z.array(z.record(z.string(), z.unknown())) }).parse(template).alerts;
    const alerts = Array.from({ length: BUSY_RUNS_PER_SECOND }, (_, n) => ({ ...alert, fingerprint: `storm${String(n).padStart(6, '0')}` }));
    const reply = await postAlerts(served.base, { ...template, alerts });
    t.equal(reply.status, 202, 'the storm is accepted');
    const [line] = await served.logged('the engine to see the storm', (entry) => entry.msg === RELEASED, PROBE_DEADLINE_MS);
    t.equal(line?.runsPerSecond, BUSY_RUNS_PER_SECOND, `logged at debug: "${RELEASED}", with the second's count`);
  };
  const released = reading.parse(JSON.parse(await probeInstalled(t, await dryRunSettings(t), PROBE, { args: ['--log-level', 'debug'], before: storm })));
  t.ok(released.after > released.before, `new space grew from ${released.before} to ${released.after} bytes when 40 MB survived scavenges`);
});
