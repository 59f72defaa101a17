import { text as readAll } from 'node:stream/consumers';
import { Registry } from 'prom-client';
import t from 'tap';
import { blockRow } from '../../../src/collectors/framework/block.js';
import { CachedReading } from '../../../src/collectors/framework/cache.js';
import { buildScraper } from '../../../src/collectors/registry.js';
import { Scraper } from '../../../src/collectors/framework/scraper.js';
import type { CollectorInstance, CollectorModule } from '../../../src/collectors/framework/types.js';
import { parseConfig } from '../../../src/config/load.js';
import { bufferLogger } from '../../fixtures/log.js';

const { log } = bufferLogger();

function fakeModule(name: string, instances: CollectorInstance[], extra: Partial<CollectorModule> = {}): [CollectorModule, CollectorInstance[]] {
  const module: CollectorModule = {
    name,
    families: [{ name: `test_${name}_value`, help: 'A test value.', type: 'gauge', labelNames: ['target'] }],
    build: () => instances,
    ...extra,
  };
  return [module, instances];
}

function scraperOf(entries: [CollectorModule, CollectorInstance[]][], timeoutSeconds = 0.2, logger = log): Scraper {
  return new Scraper(new Registry(), entries.map(([m]) => m), new Map(entries), timeoutSeconds, logger);
}

function line(text: string, series: string): string | undefined {
  return text.split('\n').find((l) => l.startsWith(`${series} `));
}

t.test('a hanging collector times out without stalling the others', async (t) => {
  let hungSignal: AbortSignal | undefined;
  const hanging: CollectorInstance = {
    collector: 'slow', target: 'a',
    collect: (signal) => { hungSignal = signal; return new Promise(() => undefined); },
  };
  const healthy: CollectorInstance = {
    collector: 'fast', target: 'b',
    collect: async () => ({ readings: [{ family: 'test_fast_value', labels: { target: 'b' }, value: 7 }] }),
  };
  const scraper = scraperOf([fakeModule('slow', [hanging], { upFamily: { name: 'test_slow_up', help: 'Up.', label: 'target' } }), fakeModule('fast', [healthy])]);
  const text = await readAll(await scraper.scrape());
  t.equal(line(text, 'upkeep_collector_up{collector="slow",target="a"}'), 'upkeep_collector_up{collector="slow",target="a"} 0');
  t.equal(line(text, 'test_slow_up{target="a"}'), 'test_slow_up{target="a"} 0');
  t.equal(line(text, 'upkeep_collector_up{collector="fast",target="b"}'), 'upkeep_collector_up{collector="fast",target="b"} 1');
  t.equal(line(text, 'test_fast_value{target="b"}'), 'test_fast_value{target="b"} 7');
  t.ok(hungSignal?.aborted, 'the hung collection was told to stop');
  t.match(scraper.statuses().find((s) => s.collector === 'slow'), { up: false, lastError: 'timed out after 0.2s', lastSuccessSeconds: null });

  // The hung collection is still pending: the next scrape must not start a second one.
  const again = await readAll(await scraper.scrape());
  t.equal(line(again, 'upkeep_collector_up{collector="slow",target="a"}'), 'upkeep_collector_up{collector="slow",target="a"} 0');
  t.match(scraper.statuses().find((s) => s.collector === 'slow'), { lastError: 'previous collection still running' });
});

t.test('overlapping scrapes share one collection', async (t) => {
  let calls = 0;
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => { release = resolve; });
  const instance: CollectorInstance = {
    collector: 'gated', target: 'x',
    collect: async () => { calls += 1; await gate; return { readings: [] }; },
  };
  const scraper = scraperOf([fakeModule('gated', [instance])], 5);
  const first = scraper.scrape();
  const second = scraper.scrape();
  release();
  const [a, b] = await Promise.all([first, second]);
  t.equal(calls, 1);
  t.equal(await readAll(a), await readAll(b), 'each caller reads the same text from its own stream');
  await scraper.scrape();
  t.equal(calls, 2, 'a later scrape collects again');
});

t.test('failures are reported, recovery is seen, and series vanish with the failure', async (t) => {
  let healthy = false;
  const instance: CollectorInstance = {
    collector: 'flaky', target: 'x',
    collect: async () => {
      if (!healthy) throw new Error('connection refused');
      return { readings: [{ family: 'test_flaky_value', labels: { target: 'x' }, value: 1 }], cacheAges: [{ reading: 'sizes', ageSeconds: 3 }] };
    },
  };
  const logged = bufferLogger();
  const scraper = scraperOf([fakeModule('flaky', [instance], { upFamily: { name: 'test_flaky_up', help: 'Up.', label: 'target' } })], 0.2, logged.log);
  let text = await readAll(await scraper.scrape());
  t.equal(line(text, 'test_flaky_up{target="x"}'), 'test_flaky_up{target="x"} 0');
  t.equal(line(text, 'test_flaky_value{target="x"}'), undefined);
  t.equal(scraper.statuses()[0]?.lastError, 'connection refused');
  healthy = true;
  text = await readAll(await scraper.scrape());
  t.equal(line(text, 'test_flaky_up{target="x"}'), 'test_flaky_up{target="x"} 1');
  t.equal(line(text, 'test_flaky_value{target="x"}'), 'test_flaky_value{target="x"} 1');
  t.equal(line(text, 'upkeep_collector_cache_age_seconds{collector="flaky",target="x",reading="sizes"}'), 'upkeep_collector_cache_age_seconds{collector="flaky",target="x",reading="sizes"} 3');
  t.match(text, /upkeep_collector_last_success_timestamp_seconds\{collector="flaky",target="x"\} \d+/);
  healthy = false;
  text = await readAll(await scraper.scrape());
  t.equal(line(text, 'test_flaky_value{target="x"}'), undefined, 'no stale values after a failure');
  t.match(text, /upkeep_collector_last_success_timestamp_seconds\{collector="flaky",target="x"\} \d+/, 'last success is kept');
  healthy = true;
  await readAll(await scraper.scrape());
  await readAll(await scraper.scrape());
  t.same(logged.lines().map(({ level, collector, target, err, msg }) => ({ level, collector, target, err, msg })), [
    { level: 40, collector: 'flaky', target: 'x', err: 'connection refused', msg: 'collection failed' },
    { level: 30, collector: 'flaky', target: 'x', err: undefined, msg: 'collection recovered' },
    { level: 40, collector: 'flaky', target: 'x', err: 'connection refused', msg: 'collection failed' },
    { level: 30, collector: 'flaky', target: 'x', err: undefined, msg: 'collection recovered' },
  ], 'each failure and each recovery logged once, whatever the number of scrapes');
});

t.test('a collector may report its own target down while collecting fine', async (t) => {
  const instance: CollectorInstance = {
    collector: 'probe', target: 'svc',
    collect: async () => ({ readings: [{ family: 'test_probe_up', labels: { target: 'svc' }, value: 0 }] }),
  };
  const scraper = scraperOf([fakeModule('probe', [instance], { upFamily: { name: 'test_probe_up', help: 'Up.', label: 'target' } })]);
  const text = await readAll(await scraper.scrape());
  t.equal(text.split('\n').filter((l) => l.startsWith('test_probe_up{')).join('|'), 'test_probe_up{target="svc"} 0');
  t.equal(line(text, 'upkeep_collector_up{collector="probe",target="svc"}'), 'upkeep_collector_up{collector="probe",target="svc"} 1');
});

t.test('emitting an undeclared family is a programming error', async (t) => {
  const instance: CollectorInstance = {
    collector: 'sloppy', target: 'x',
    collect: async () => ({ readings: [{ family: 'test_undeclared', labels: {}, value: 1 }] }),
  };
  await t.rejects(scraperOf([fakeModule('sloppy', [instance])]).scrape(), /undeclared metric family test_undeclared/);
});

t.test('close releases every instance, even when one fails to close', async (t) => {
  const closed: string[] = [];
  const a: CollectorInstance = { collector: 'c', target: 'a', collect: async () => ({ readings: [] }), close: async () => { closed.push('a'); } };
  const b: CollectorInstance = { collector: 'c', target: 'b', collect: async () => ({ readings: [] }), close: async () => { closed.push('b'); throw new Error('boom'); } };
  const c: CollectorInstance = { collector: 'c', target: 'c', collect: async () => ({ readings: [] }) };
  await scraperOf([fakeModule('c', [a, b, c])]).close();
  t.same(closed.sort(), ['a', 'b']);
});

t.test('buildScraper honours collectors.disabled', async (t) => {
  const parsed = parseConfig('targets: { disks: [{ path: / }] }\ncollectors: { disabled: [disks] }\n', {});
  if (!parsed.ok) throw new Error('config');
  const scraper = buildScraper({ config: parsed.config, log }, new Registry());
  t.same(scraper.statuses(), []);
});

t.test('cached readings', async (t) => {
  t.test('first read waits, later reads are served from cache with their age', async (t) => {
    let now = 1_000_000;
    let fetches = 0;
    const cache = new CachedReading(60, async () => { fetches += 1; return fetches; }, () => now);
    t.same(await cache.get(), { value: 1, ageSeconds: 0 });
    now += 30_000;
    t.same(await cache.get(), { value: 1, ageSeconds: 30 });
    now += 30_000;
    const stale = await cache.get();
    t.same(stale, { value: 1, ageSeconds: 60 }, 'a stale value is served while the refresh runs');
    await cache.refresh();
    t.same(await cache.get(), { value: 2, ageSeconds: 0 }, 'the background refresh landed, shared with the explicit one');
  });
  t.test('a failing first read rejects; a later failure keeps the last value and records the error', async (t) => {
    let fail = true;
    const cache = new CachedReading(1, async () => { if (fail) throw new Error('unreachable'); return 'ok'; });
    await t.rejects(cache.get(), /unreachable/);
    t.match(cache.error?.message, 'unreachable');
    fail = false;
    t.equal((await cache.get()).value, 'ok');
    t.equal(cache.error, null);
    fail = true;
    await t.rejects(cache.refresh(), /unreachable/);
    t.equal((await cache.get()).value, 'ok');
  });
  t.test('with deferMs, a stale read asks for one refresh that starts that much later; stop cancels it', async (t) => {
    let now = 1_000_000;
    let fetches = 0;
    const cache = new CachedReading(60, async () => ++fetches, () => now, 50);
    await cache.get();
    now += 60_000;
    t.same([(await cache.get()).value, (await cache.get()).value], [1, 1], 'stale values are served');
    t.equal(fetches, 1, 'no refresh yet');
    await new Promise((resolve) => setTimeout(resolve, 150));
    t.equal(fetches, 2, 'one refresh for both stale reads, after the delay');
    t.same(await cache.get(), { value: 2, ageSeconds: 0 });
    now += 60_000;
    await cache.get();
    cache.stop();
    await new Promise((resolve) => setTimeout(resolve, 150));
    t.equal(fetches, 2, 'stopped before the delay: no refresh');
  });
  t.test('start refreshes on a timer until stopped', async (t) => {
    let fetches = 0;
    const cache = new CachedReading(0.02, async () => ++fetches);
    cache.start();
    cache.start();
    await new Promise((resolve) => setTimeout(resolve, 200));
    cache.stop();
    const seen = fetches;
    t.ok(seen >= 2, `refreshed on its own (${seen} fetches)`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    t.equal(fetches, seen, 'no refresh after stop');
  });
});

t.test('collectOnly: a replica collects, publishes and reports only the targets it owns, and picks up a target handed to it', async (t) => {
  const calls: string[] = [];
  const instance = (target: string): CollectorInstance => ({
    collector: 'shared', target,
    collect: async () => { calls.push(target); return { readings: [{ family: 'test_shared_value', labels: { target }, value: 1 }] }; },
  });
  const scraper = scraperOf([fakeModule('shared', [instance('a'), instance('b')], { upFamily: { name: 'test_shared_up', help: 'Up.', label: 'target' } })]);
  let mine = new Set(['a']);
  scraper.collectOnly((collector, target) => collector === 'shared' && mine.has(target));
  const text = await readAll(await scraper.scrape());
  t.same(calls, ['a'], 'only its own target was collected');
  t.equal(line(text, 'test_shared_value{target="a"}'), 'test_shared_value{target="a"} 1');
  t.equal(line(text, 'upkeep_collector_up{collector="shared",target="a"}'), 'upkeep_collector_up{collector="shared",target="a"} 1');
  t.notOk(text.includes('target="b"'), 'no series at all for the target another replica collects');
  t.same(scraper.statuses().map((status) => status.target), ['a']);

  mine = new Set(['a', 'b']);
  const after = await readAll(await scraper.scrape());
  t.same(calls, ['a', 'a', 'b'], 'a target handed over is collected at the next scrape');
  t.equal(line(after, 'test_shared_up{target="b"}'), 'test_shared_up{target="b"} 1');
  mine = new Set();
  const none = await readAll(await scraper.scrape());
  t.notOk(none.includes('target="'), 'a replica that owns nothing exposes no target series');
  t.same(scraper.statuses(), []);
});

t.test('a result is released once a newer one is published and no exposition still reads it', async (t) => {
  // A collector that reuses a result's array once it is released, as the PostgreSQL one does: a
  // release that came while a slow client still read the result would change that client's text.
  const free: Float64Array[] = [];
  const released: number[] = [];
  let collection = 0;
  const rows = Array.from({ length: 2000 }, (_, i) => blockRow(['target', 'row'], ['x', String(i)]));
  const instance: CollectorInstance = {
    collector: 'reused', target: 'x',
    collect: async () => {
      collection += 1;
      const number = collection;
      const values = free.pop() ?? new Float64Array(rows.length);
      values.fill(number);
      return {
        readings: [],
        blocks: [{ labelNames: ['target', 'row'], rows, columns: [{ family: 'test_reused_value', values }] }],
        release: () => { released.push(number); free.push(values); },
      };
    },
  };
  const scraper = scraperOf([fakeModule('reused', [instance], { families: [{ name: 'test_reused_value', help: 'A reused value.', type: 'gauge', labelNames: ['target', 'row'] }] })], 5);
  const values = (text: string) => new Set(text.split('\n').filter((l) => l.startsWith('test_reused_value{')).map((l) => l.slice(l.lastIndexOf(' ') + 1)));

  t.same(values(await readAll(await scraper.scrape())), new Set(['1']));
  t.same(released, [], 'the published result is not released');
  t.same(values(await readAll(await scraper.scrape())), new Set(['2']));
  t.same(released, [1], 'replaced and read by no one: released at once');

  // A slow client: its exposition (of result 3) has begun, one slice read, when two newer results are published.
  const slow = await scraper.slices();
  const first = await slow.next();
  t.notOk(first.done);
  const chunks = [Buffer.from(first.value ?? new Uint8Array())];
  t.same(released, [1, 2]);
  t.same(values(await readAll(await scraper.scrape())), new Set(['4']));
  t.same(values(await readAll(await scraper.scrape())), new Set(['5']));
  t.same(released, [1, 2, 4], 'result 3 is still read by the slow client; result 4 was not');
  for await (const slice of slow) chunks.push(Buffer.from(slice));
  t.same(released, [1, 2, 4, 3], 'released once the slow client read the end');
  t.same(values(Buffer.concat(chunks).toString()), new Set(['3']), 'the slow client read result 3 unchanged, though results 4 and 5 were collected into reused arrays meanwhile');

  // A client that goes away mid-way (its loop broken) ends its reading too.
  const gone = await scraper.slices();
  await gone.next();
  await readAll(await scraper.scrape());
  t.same(released, [1, 2, 4, 3, 5], 'result 6 is still read');
  await gone.return(undefined);
  t.same(released, [1, 2, 4, 3, 5, 6], 'released when the client went away');
});
