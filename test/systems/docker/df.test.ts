import t from 'tap';
import { diskUsage, systemDfWhenFree } from '../../../src/systems/docker/df.js';

const byType = (response: unknown) => Object.fromEntries(diskUsage(response).map((usage) => [usage.type, [usage.bytes, usage.reclaimableBytes]]));
const prunable = (response: unknown) => Object.fromEntries(diskUsage(response).map((usage) => [usage.type, usage.prunableBytes]));

t.test('an idle daemon as Docker 20.10 answers /system/df (null lists)', (t) => {
  const response = {
    LayersSize: 1982291,
    Images: [{ Containers: 0, Created: 1795395423, Id: 'sha256:f85e', Labels: null, ParentId: '', RepoDigests: null, RepoTags: ['upkeep-test/busybox:latest'], SharedSize: 0, Size: 1982291, VirtualSize: 1982291 }],
    Containers: [],
    Volumes: [],
    BuildCache: null,
    BuilderSize: 0,
  };
  t.same(byType(response), { images: [1982291, 1982291], containers: [0, 0], volumes: [0, 0], build_cache: [0, 0] });
  t.end();
});

t.test('reclaimable follows docker system df: only what a prune could remove', (t) => {
  const response = {
    LayersSize: 1000,
    Images: [
      { Containers: 2, Size: 600, SharedSize: 100 }, // in use: its 500 unshared bytes stay
      { Containers: 0, Size: 400, SharedSize: 100 },
      { Containers: 1, Size: 50, SharedSize: -1 }, // size unknown: not subtracted
    ],
    Containers: [
      { State: 'running', SizeRw: 10 },
      { State: 'paused', SizeRw: 20 },
      { State: 'restarting', SizeRw: 40 },
      { State: 'exited', SizeRw: 80 },
      { State: 'created' },
    ],
    Volumes: [
      { UsageData: { Size: 300, RefCount: 0 } },
      { UsageData: { Size: 700, RefCount: 1 } },
      { UsageData: { Size: -1, RefCount: 0 } }, // not measured by the driver
      { UsageData: null },
    ],
    BuildCache: [
      { Size: 5, InUse: false, Shared: false },
      { Size: 7, InUse: true, Shared: false },
      { Size: 11, InUse: false, Shared: true },
    ],
  };
  t.same(byType(response), {
    images: [1000, 500],
    containers: [150, 80],
    volumes: [1000, 300],
    build_cache: [12, 5],
  });
  t.end();
});

t.test('prunable: what the safe prune frees, so an alert on it clears once the prune ran', (t) => {
  const response = {
    LayersSize: 10_000,
    Images: [
      { Containers: 0, Size: 4000, SharedSize: 0, RepoTags: ['app:1.0'] }, // an old release: reclaimable, never pruned
      { Containers: 0, Size: 900, SharedSize: 100, RepoTags: [] }, // untagged (Docker 23+): its 800 unshared bytes
      { Containers: 0, Size: 70, SharedSize: -1, RepoTags: ['<none>:<none>'] }, // untagged (Docker 20.10), shared size unknown
      { Containers: 0, Size: 5, SharedSize: 0, RepoTags: null },
      { Containers: 1, Size: 3000, SharedSize: 0, RepoTags: ['<none>:<none>'] }, // untagged but a container uses it
      { Containers: 0, Size: 600, SharedSize: 0, RepoTags: ['<none>:<none>', 'app:2.0'] },
    ],
    Containers: [{ State: 'exited', SizeRw: 80 }, { State: 'running', SizeRw: 10 }],
    Volumes: [{ UsageData: { Size: 300, RefCount: 0 } }],
    BuildCache: [{ Size: 5, InUse: false, Shared: false }, { Size: 7, InUse: true, Shared: false }],
  };
  t.same(prunable(response), { images: 875, containers: 80, volumes: null, build_cache: 5 });
  t.equal(byType(response).images?.[1], 10_000 - 3000, 'Docker\'s reclaimable still counts the tagged release');
  t.end();
});

t.test('a response that is not a df answer is rejected, not guessed at', (t) => {
  t.throws(() => diskUsage({ Images: 'many' }));
  t.same(byType({}), { images: [0, 0], containers: [0, 0], volumes: [0, 0], build_cache: [0, 0] }, 'an empty daemon');
  t.end();
});

t.test('GET /system/df waits out another disk-usage computation (Docker before 23 refuses a second with a 500)', async (t) => {
  // dockerode's error, as a helper saw it while `docker system df` ran in a loop beside a prune.
  const busy = () => Object.assign(new Error('(HTTP code 500) server error - a disk usage operation is already running '), { statusCode: 500 });
  let calls = 0;
  const flaky = { df: async () => { calls += 1; if (calls < 3) throw busy(); return { LayersSize: 7 }; } };
  t.same(await systemDfWhenFree(flaky, new AbortController().signal), { LayersSize: 7 });
  t.equal(calls, 3, 'asked again until the other computation was done');

  const broken = { df: async () => { throw Object.assign(new Error('(HTTP code 500) server error - no space left on device'), { statusCode: 500 }); } };
  await t.rejects(systemDfWhenFree(broken, new AbortController().signal), /no space left on device/, 'any other error at once');

  const aborted = new AbortController();
  let tries = 0;
  const stuck = { df: async () => { tries += 1; if (tries === 2) aborted.abort(); throw busy(); } };
  await t.rejects(systemDfWhenFree(stuck, aborted.signal), /a disk usage operation is already running/, 'until the run or the scrape gives up');
  t.equal(tries, 2);
});
