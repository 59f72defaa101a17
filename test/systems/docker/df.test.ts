import t from 'tap';
import { diskUsage } from '../../../src/systems/docker/df.js';

const byType = (response: unknown) => Object.fromEntries(diskUsage(response).map((usage) => [usage.type, [usage.bytes, usage.reclaimableBytes]]));

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

t.test('a response that is not a df answer is rejected, not guessed at', (t) => {
  t.throws(() => diskUsage({ Images: 'many' }));
  t.same(byType({}), { images: [0, 0], containers: [0, 0], volumes: [0, 0], build_cache: [0, 0] }, 'an empty daemon');
  t.end();
});
