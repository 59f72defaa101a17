import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type Docker from 'dockerode';
import t from 'tap';
import { z } from 'zod';
import { DOCKER_SOCKET, ensureDocker, ensureTestImage, runContainer, TEST_IMAGE } from '../fixtures/docker.js';
import { dockerPrune, pruneFilters, pruneScope, pruneWhenFree, validUntil } from '../../src/actions/docker.js';
import { ValidationError } from '../../src/errors.js';
import { buildContext, perform, testConfig } from './context.js';

const run = promisify(execFile);

/** `docker import` of a unique single-layer rootfs: untagged it is dangling, tagged it is not. */
async function importImage(label: string, tag?: string): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'upkeep-prune-'));
  try {
    await writeFile(join(root, 'blob'), randomBytes(96 * 1024));
    const { stdout } = await run('bash', ['-c', `tar -C '${root}' -c . | docker import --change 'LABEL ${label}' - ${tag ?? ''}`]);
    return stdout.trim();
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

const dfShape = z.object({
  Images: z.array(z.object({ Id: z.string(), Size: z.number() })).nullish(),
  Containers: z.array(z.object({ Id: z.string(), SizeRw: z.number().nullish() })).nullish(),
  Volumes: z.array(z.object({ Name: z.string(), UsageData: z.object({ Size: z.number() }).nullish() })).nullish(),
});

/** Object id/name -> bytes, as `docker system df` reports them. */
async function dfSizes(docker: Docker): Promise<Map<string, number>> {
  const df = dfShape.parse(await docker.df());
  return new Map([
    ...(df.Images ?? []).map((image) => [image.Id, image.Size] as const),
    ...(df.Containers ?? []).map((container) => [container.Id, container.SizeRw ?? 0] as const),
    ...(df.Volumes ?? []).map((volume) => [volume.Name, volume.UsageData?.Size ?? 0] as const),
  ]);
}

/** Bytes of the objects df listed before and no longer lists. */
function vanishedBytes(before: Map<string, number>, after: Map<string, number>, ours: readonly string[]): number {
  return ours.filter((id) => before.has(id) && !after.has(id)).reduce((sum, id) => sum + (before.get(id) ?? 0), 0);
}

async function exists(inspect: () => Promise<unknown>): Promise<boolean> {
  try {
    await inspect();
    return true;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return false;
    throw err;
  }
}

t.test('filters and scope', async (t) => {
  const params = dockerPrune.params.parse({ target: 'local', until: '24h', label: 'app=refnet, !keep' });
  t.same(params.label, ['app=refnet', '!keep']);
  t.same(pruneFilters(params, 'images'), { dangling: ['true'], until: ['24h'], label: ['app=refnet'], 'label!': ['keep'] });
  t.same(pruneFilters(params, 'volumes'), { label: ['app=refnet'], 'label!': ['keep'] }, 'volumes have no until filter');
  t.same(pruneFilters(params, 'buildCache'), { until: ['24h'] }, 'build cache has no label filter');
  t.same(pruneScope(params), { kinds: ['containers', 'images', 'networks'], skipped: ['build cache: it cannot be filtered by label, so a labelled prune leaves it alone'] });
  t.same(pruneScope(dockerPrune.params.parse({ target: 'local', volumes: 'true' })).kinds, ['containers', 'images', 'networks', 'volumes', 'buildCache']);
  t.equal(dockerPrune.risk(dockerPrune.params.parse({ target: 'local' })), 'safe');
  t.equal(dockerPrune.risk(dockerPrune.params.parse({ target: 'local', volumes: true })), 'destructive');
  t.throws(() => dockerPrune.params.parse({ target: 'local', label: 'bad label' }));
  // A blank label (say, an alert label that was empty) would otherwise mean "no filter": prune everything.
  for (const blank of ['', ' ', ' , ', [], ['', ' ']]) {
    t.throws(() => dockerPrune.params.parse({ target: 'local', label: blank }), /must name at least one label; an empty filter would prune everything/, JSON.stringify(blank));
  }
  t.throws(() => dockerPrune.screen?.(params, testConfig({}), 'alert'), /unknown docker target "local"/, 'an unknown target is refused before the run is queued');
  t.throws(() => dockerPrune.params.parse({ target: 'local', until: 'yesterday' }));
  t.ok(dockerPrune.params.parse({ target: 'local', until: '2024-01-02T03:04:05Z' }));
  // What the daemon parses, and what it refused with a 500 (a failed run, counted by the circuit breaker).
  for (const until of ['24h', '1h30m', '1.5h', '90m', '876000h', '24', '1700000000', '2026-12-01', '2026-12-01T10:00', '2026-02-28T23:59:59.5+09:00']) t.equal(validUntil(until), true, until);
  for (const until of ['99999999999999999999h', '876001h', '9999999999999999999999', '2026-13-45', '2026-02-30', '2026-12-01T25:00:00Z', '24h ', 'h', '']) t.equal(validUntil(until), false, until);
  t.equal(dockerPrune.params.safeParse({ target: 'local', until: '2026-13-45' }).error?.issues[0]?.message, 'must be a duration such as "24h" (at most 100 years), a Unix time, or a date such as "2026-12-01" or "2026-12-01T10:00:00Z"');
  // No label value holds control or bidi characters; they reached the daemon and the journal.
  for (const label of ['app=probe\u0000', 'app=\u0001\u001b[31m', 'k=\u202eevil', 'k=a\u2066b']) {
    t.equal(dockerPrune.params.safeParse({ target: 'local', label }).error?.issues[0]?.message, 'must be key, key=value or !key', JSON.stringify(label));
  }
  t.ok(dockerPrune.params.parse({ target: 'local', label: 'team=données,!keep' }), 'other Unicode is a value like any');
  t.same(dockerPrune.lock(params, testConfig({})), { kind: 'local', key: 'docker.prune:local' });
});

t.test('docker.prune against the real daemon', async (t) => {
  const docker = await ensureDocker();
  await ensureTestImage(docker);
  const context = buildContext({ targets: { docker: [{ name: 'local', socketPath: DOCKER_SOCKET }] } });
  t.teardown(() => context.close());
  const id = `${process.pid}-${Date.now()}`;
  const label = `upkeep.prune.test=${id}`;
  const labels = { 'upkeep.prune.test': id };

  // Everything made here carries the label, so cleanup finds it even when setup fails half way.
  t.teardown(async () => {
    for (const info of await docker.listContainers({ all: true, filters: { label: [label] } })) await docker.getContainer(info.Id).remove({ force: true });
    for (const info of await docker.listImages({ all: true, filters: { label: [label] } })) await docker.getImage(info.Id).remove({ force: true });
    for (const info of (await docker.listVolumes({ filters: { label: [label] } })).Volumes ?? []) await docker.getVolume(info.Name).remove();
  });
  const running = await runContainer(docker, { name: `upkeep-prune-running-${id}`, cmd: ['sleep', '600'], labels });
  const stopped = await runContainer(docker, { name: `upkeep-prune-stopped-${id}`, cmd: ['busybox', 'dd', 'if=/dev/urandom', 'of=/junk', 'bs=1024', 'count=64'], labels });
  await stopped.wait();
  const dangling = await importImage(label);
  const tagged = await importImage(label, `upkeep-prune-test/keep:${id}`);
  // Anonymous by Docker's own label, so API >= 1.42 daemons (anonymous-only volume prune) prune it too.
  const volume = await docker.createVolume({ Name: `upkeep-prune-${id}`, Labels: { ...labels, 'com.docker.volume.anonymous': '' } });
  const filler = await docker.createContainer({ Labels: labels, Image: TEST_IMAGE, Cmd: ['busybox', 'dd', 'if=/dev/urandom', 'of=/data/blob', 'bs=1024', 'count=32'], HostConfig: { NetworkMode: 'none', Binds: [`${volume.name}:/data`] } });
  await filler.start();
  await filler.wait();
  await filler.remove();
  t.test('invalid requests are refused', async (t) => {
    await t.rejects(dockerPrune.resolve(dockerPrune.params.parse({ target: 'elsewhere' }), context), ValidationError);
    await t.rejects(dockerPrune.resolve(dockerPrune.params.parse({ target: 'local', volumes: true, until: '24h' }), context), /volumes cannot be filtered by until/);
  });

  t.test('stopped container and dangling image go; running container, tagged image and volume stay', async (t) => {
    const before = await dfSizes(docker);
    const result = await perform(dockerPrune, { target: 'local', label }, context);
    const after = await dfSizes(docker);
    t.equal(await exists(() => stopped.inspect()), false, 'stopped container removed');
    t.equal(await exists(() => docker.getImage(dangling).inspect()), false, 'dangling image removed');
    t.equal(await exists(() => running.inspect()), true, 'running container kept');
    t.equal(await exists(() => docker.getImage(tagged).inspect()), true, 'tagged image kept');
    t.equal(await exists(() => docker.getVolume(volume.name).inspect()), true, 'volume kept');
    const reported = Number(result.output.detail.reclaimedBytes);
    t.ok(reported > 96 * 1024, `reclaimed ${reported} bytes`);
    t.equal(reported, vanishedBytes(before, after, [stopped.id, dangling]), 'reported bytes = df sizes of the objects that disappeared');
    const pruned = z.object({ images: z.object({ count: z.number(), deleted: z.array(z.string()) }) }).parse(result.output.detail.pruned);
    t.same(pruned.images, { count: 1, deleted: [dangling] }, 'one image, not its layer too (the daemon lists both as deleted)');
    t.equal(result.verification.ok, true);
    t.match(result.verification.detail, new RegExp(`^reported ${reported} bytes reclaimed; docker system df total fell by -?\\d+ bytes$`));
    t.match(result.plan.at(-1)?.detail, /^skip build cache/);
    t.match(result.plan[0]?.detail, `POST /containers/prune filters={"label":["${label}"]}`);
  });

  t.test('volumes: true prunes the unused volume and counts its bytes', async (t) => {
    const before = await dfSizes(docker);
    const result = await perform(dockerPrune, { target: 'local', label, volumes: true }, context);
    const after = await dfSizes(docker);
    t.equal(await exists(() => docker.getVolume(volume.name).inspect()), false, 'volume removed');
    t.equal(await exists(() => running.inspect()), true, 'running container kept');
    t.equal(await exists(() => docker.getImage(tagged).inspect()), true, 'tagged image kept');
    const pruned = z.object({ volumes: z.object({ reclaimedBytes: z.number(), deleted: z.array(z.string()) }) }).parse(result.output.detail.pruned);
    t.same(pruned.volumes.deleted, [volume.name]);
    t.ok(pruned.volumes.reclaimedBytes >= 32 * 1024);
    t.equal(Number(result.output.detail.reclaimedBytes), vanishedBytes(before, after, [volume.name]));
    t.equal(result.verification.ok, true);
  });

  t.test('the build cache alone, with an until filter', async (t) => {
    const result = await perform(dockerPrune, { target: 'local', containers: false, images: false, networks: false, until: '2400h' }, context);
    t.same(result.plan, [{ kind: 'docker', detail: 'POST /build/prune filters={"until":["2400h"]}' }]);
    t.same(Object.keys(z.record(z.string(), z.unknown()).parse(result.output.detail.pruned)), ['buildCache']);
    t.equal(result.verification.ok, true);
  });

  t.test('verify fails when a pruned object is still listed', async (t) => {
    const params = dockerPrune.params.parse({ target: 'local', label });
    const before = await dockerPrune.check(params, context);
    t.equal(before.proceed, true);
    t.match(before.reason, /^reclaimable bytes: images \d+, containers \d+, volumes \d+, build_cache \d+; prunable \(no volumes, no tagged images\): images \d+, containers \d+, build_cache \d+$/);
    const output = { detail: { reclaimedBytes: 0, pruned: { containers: { count: 1, reclaimedBytes: 0, deleted: [running.id] } } } };
    const verification = await dockerPrune.verify(params, before, output, context);
    t.equal(verification.ok, false);
    t.match(verification.detail, `still listed after the prune: ${running.id}`);
  });
});

t.test('a prune already running on the daemon (409) is waited for, other errors are not', async (t) => {
  const busy = Object.assign(new Error('a prune operation is already running'), { statusCode: 409 });
  let calls = 0;
  const reply = await pruneWhenFree(async () => { calls += 1; if (calls < 3) throw busy; return { SpaceReclaimed: 7 }; }, new AbortController().signal, 1);
  t.same(reply, { SpaceReclaimed: 7 });
  t.equal(calls, 3);
  await t.rejects(pruneWhenFree(async () => { throw Object.assign(new Error('boom'), { statusCode: 500 }); }, new AbortController().signal, 1), /boom/);
  const aborted = new AbortController();
  aborted.abort();
  await t.rejects(pruneWhenFree(async () => { throw busy; }, aborted.signal, 1), /already running/, 'the deadline ends the wait');
});
