import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rename, rm, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import t from 'tap';
import { ContainerLogs, containerName } from '../../src/collectors/docker-logs.js';
import { DOCKER_SOCKET, ensureDocker, ensureTestImage, runContainer, TEST_IMAGE } from '../fixtures/docker.js';
import { freePort, waitFor } from '../fixtures/ports.js';
import { byLabels, testApp, valueOf, type Sample } from './helpers.js';

const run = promisify(execFile);
const prefix = `upkeep-collector-${process.pid}`;

function dockerYaml(connection: string, extra = ''): string {
  return `targets:\n  docker:\n    - name: local\n      ${connection}\n${extra.split('\n').map((line) => `      ${line}`).join('\n')}\n`;
}

async function dockerCli(...args: string[]): Promise<string[]> {
  const { stdout } = await run('docker', args);
  return stdout.split('\n').filter((line) => line !== '');
}

/**
 * Other test files share this dockerd and may add or remove their own containers meanwhile, so a
 * daemon-wide count is checked against `docker` read just before and just after the scrape.
 */
async function bracket(t: Tap, read: () => Promise<number>, scrape: () => Promise<number | undefined>, what: string): Promise<void> {
  const before = await read();
  const exported = await scrape();
  const after = await read();
  t.ok(exported !== undefined && exported >= Math.min(before, after) && exported <= Math.max(before, after), `${what}: exported ${exported}, docker says ${before} then ${after}`);
}
type Tap = { ok(value: unknown, message: string): void };

// `docker system df` prints sizes like "1.982MB" (decimal units, 4 significant digits).
function parseHumanSize(text: string): number {
  const match = /^([\d.]+)\s*(B|kB|MB|GB|TB)/.exec(text);
  if (!match) throw new Error(`not a size: ${text}`);
  return Number(match[1]) * 1000 ** ['B', 'kB', 'MB', 'GB', 'TB'].indexOf(match[2]!);
}

t.test('docker collector', async (t) => {
  const docker = await ensureDocker();
  await ensureTestImage(docker);
  const names = { running: `${prefix}-running`, exited: `${prefix}-exited`, created: `${prefix}-created`, writer: `${prefix}-writer`, volume: `${prefix}-volume` };
  t.teardown(async () => {
    for (const name of [names.running, names.exited, names.created, names.writer]) await docker.getContainer(name).remove({ force: true }).catch(() => undefined);
    await docker.getVolume(names.volume).remove().catch(() => undefined);
  });
  await runContainer(docker, { name: names.running, cmd: ['sleep', '300'] });
  const exited = await runContainer(docker, { name: names.exited, cmd: ['sh', '-c', 'busybox yes upkeep-log-line | busybox head -n 2000'] });
  await exited.wait();
  await docker.createContainer({ name: names.created, Image: TEST_IMAGE, Cmd: ['true'], HostConfig: { NetworkMode: 'none' } });
  // A volume with data and no container using it: reclaimable.
  const writer = await docker.createContainer({ name: names.writer, Image: TEST_IMAGE, Cmd: ['busybox', 'dd', 'if=/dev/zero', 'of=/data/blob', 'bs=1024', 'count=512'], HostConfig: { NetworkMode: 'none', Binds: [`${names.volume}:/data`] } });
  await writer.start();
  await writer.wait();
  await writer.remove();
  const logPath = (await exited.inspect()).LogPath;

  t.test('ground truth: running and stopped equal docker ps -a, log bytes equal stat of LogPath', async (t) => {
    const app = await testApp(t, dockerYaml(`socketPath: ${DOCKER_SOCKET}`));
    let samples: Sample[] = [];
    const scrape = async () => { samples = (await app.scrape()).samples; return valueOf(samples, 'upkeep_docker_stopped_containers'); };
    await bracket(t, async () => (await dockerCli('ps', '-aq', '--filter', 'status=exited', '--filter', 'status=created', '--filter', 'status=dead')).length, scrape, 'stopped containers');
    t.equal(valueOf(samples, 'upkeep_docker_up', { target: 'local' }), 1);
    const running = byLabels(samples, 'upkeep_docker_container_running', ['container']);
    const ps = new Map((await dockerCli('ps', '-a', '--filter', `name=${prefix}`, '--format', '{{.Names}} {{.State}}')).map((line) => line.split(' ') as [string, string]));
    t.same(ps, new Map([[names.running, 'running'], [names.exited, 'exited'], [names.created, 'created']]));
    for (const [name, state] of ps) t.equal(running.get(name), state === 'running' ? 1 : 0, `${name} is ${state}`);
    const logs = byLabels(samples, 'upkeep_docker_container_log_bytes', ['container']);
    t.equal(logs.get(names.exited), (await stat(logPath)).size, 'log bytes equal stat of the log file');
    t.ok((logs.get(names.exited) ?? 0) > 2000 * 'upkeep-log-line'.length, 'and the file holds the 2000 lines');
    t.equal(logs.get(names.running), (await stat((await docker.getContainer(names.running).inspect()).LogPath)).size);
    t.notOk(logs.has(names.created), 'a container never started has no log file yet');
    t.equal(valueOf(samples, 'upkeep_docker_log_read_errors'), 0);
    t.ok(valueOf(samples, 'upkeep_collector_cache_age_seconds', { reading: 'disk_usage' }) !== undefined);
  });

  t.test('dangling images and disk usage agree with the docker CLI', async (t) => {
    const app = await testApp(t, dockerYaml(`socketPath: ${DOCKER_SOCKET}`));
    let samples: Sample[] = [];
    const scrape = async () => { samples = (await app.scrape()).samples; return valueOf(samples, 'upkeep_docker_dangling_images'); };
    await bracket(t, async () => (await dockerCli('images', '-q', '--filter', 'dangling=true')).length, scrape, 'dangling images');
    const cli = new Map((await dockerCli('system', 'df', '--format', '{{.Type}}|{{.Size}}|{{.Reclaimable}}')).map((line) => {
      const [type, size, reclaimable] = line.split('|') as [string, string, string];
      return [type, { size: parseHumanSize(size), reclaimable: parseHumanSize(reclaimable) }];
    }));
    const disk = byLabels(samples, 'upkeep_docker_disk_bytes', ['type']);
    const reclaimable = byLabels(samples, 'upkeep_docker_reclaimable_bytes', ['type']);
    t.same([...disk.keys()], ['images', 'containers', 'volumes', 'build_cache']);
    t.ok((disk.get('volumes') ?? 0) >= 512 * 1024, 'the volume with 512 KiB of data counts');
    const types: [string, string][] = [['images', 'Images'], ['containers', 'Containers'], ['volumes', 'Local Volumes'], ['build_cache', 'Build Cache']];
    for (const [type, cliType] of types) {
      const expected = cli.get(cliType);
      // The CLI rounds to 4 significant digits; other tests may have changed a few kB in between.
      const near = (a: number, b: number) => Math.abs(a - b) <= Math.max(b * 0.01, 50_000);
      t.ok(expected && near(disk.get(type) ?? -1, expected.size), `${type} size ${disk.get(type)} ~ CLI ${expected?.size}`);
      t.ok(expected && near(reclaimable.get(type) ?? -1, expected.reclaimable), `${type} reclaimable ${reclaimable.get(type)} ~ CLI ${expected?.reclaimable}`);
    }
  });

  t.test('prunable images: the untagged ones docker lists as dangling, never an unused tagged release', async (t) => {
    // Random bytes, so no layer is shared with another image and each image's size is its own.
    const importImage = async (tag: string, kib: number) => {
      const root = await mkdtemp(join(tmpdir(), 'upkeep-image-'));
      try {
        await run('dd', ['if=/dev/urandom', `of=${join(root, 'blob')}`, 'bs=1024', `count=${kib}`]);
        await run('bash', ['-c', `tar -C '${root}' -c . | docker import - '${tag}'`]);
      } finally {
        await rm(root, { recursive: true, force: true });
      }
      return (await dockerCli('image', 'inspect', '--format', '{{.Id}} {{.Size}}', tag))[0]!.split(' ') as [string, string];
    };
    const release = `${prefix}-release:1`;
    const [releaseId, releaseSize] = await importImage(release, 700);
    const [danglingId] = await importImage(`${prefix}-dangling:1`, 300);
    await importImage(`${prefix}-dangling:1`, 10); // takes the tag: the 300 KiB image is now untagged
    t.teardown(async () => { await run('docker', ['image', 'rm', '-f', releaseId, danglingId, `${prefix}-dangling:1`]).catch(() => undefined); });
    t.ok((await dockerCli('images', '-q', '--no-trunc', '--filter', 'dangling=true')).includes(danglingId), 'docker lists it as dangling');

    // Ground truth from the CLI: the exact sizes of the dangling images no container uses.
    const danglingBytes = async () => {
      const ids = await dockerCli('images', '-q', '--no-trunc', '--filter', 'dangling=true');
      const used = new Set(await dockerCli('ps', '-a', '--no-trunc', '--format', '{{.Image}}'));
      let total = 0;
      for (const id of ids) if (!used.has(id)) total += Number((await dockerCli('image', 'inspect', '--format', '{{.Size}}', id))[0]);
      return total;
    };
    const app = await testApp(t, dockerYaml(`socketPath: ${DOCKER_SOCKET}`));
    let samples: Sample[] = [];
    await bracket(t, danglingBytes, async () => { samples = (await app.scrape()).samples; return valueOf(samples, 'upkeep_docker_prunable_bytes', { type: 'images' }); }, 'prunable image bytes');
    const prunable = byLabels(samples, 'upkeep_docker_prunable_bytes', ['type']);
    const reclaimable = byLabels(samples, 'upkeep_docker_reclaimable_bytes', ['type']);
    t.same([...prunable.keys()], ['images', 'containers', 'build_cache'], 'volumes are never pruned unasked: no series');
    t.ok((prunable.get('images') ?? 0) >= 300 * 1024, `the dangling image counts (${prunable.get('images')} bytes)`);
    t.ok((reclaimable.get('images') ?? 0) - (prunable.get('images') ?? 0) >= Number(releaseSize),
      `the unused release (${releaseSize} bytes) is reclaimable to docker system df (${reclaimable.get('images')}) but not prunable (${prunable.get('images')})`);
    t.equal(prunable.get('containers'), reclaimable.get('containers'), 'stopped containers: both figures agree');
  });

  t.test('an unreadable log file is one log line and a metric, never a crash', async (t) => {
    const app = await testApp(t, dockerYaml(`socketPath: ${DOCKER_SOCKET}`, 'logRefreshSeconds: 0.05'));
    await app.scrape();
    await unlink(logPath);
    const scrapeAfterRefresh = async () => {
      await app.scrape(); // a stale cache refreshes in the background; the next scrape sees it
      await new Promise((resolve) => setTimeout(resolve, 100));
      return (await app.scrape()).samples;
    };
    let samples: Sample[] = [];
    await waitFor('the unreadable log noticed', async () => {
      samples = await scrapeAfterRefresh();
      if (valueOf(samples, 'upkeep_docker_log_read_errors') === 0) throw new Error('not yet');
    });
    samples = await scrapeAfterRefresh();
    t.equal(valueOf(samples, 'upkeep_docker_up', { target: 'local' }), 1);
    t.ok((valueOf(samples, 'upkeep_docker_log_read_errors') ?? 0) >= 1, 'counted');
    t.notOk(byLabels(samples, 'upkeep_docker_container_log_bytes', ['container']).has(names.exited));
    const warnings = app.logs.filter((entry) => entry.msg === 'cannot read container log files; container_log_bytes is missing for them. Mount /var/lib/docker/containers read-only where upkeep runs');
    t.equal(warnings.length, 1, 'said once, not on every scrape');
    t.match(warnings[0], { err: /ENOENT/ });
    // Written aside and renamed in, so a refresh never sees the file half-written.
    await writeFile(`${logPath}.new`, 'restored\n');
    await rename(`${logPath}.new`, logPath);
    await waitFor('log readable again', async () => {
      samples = await scrapeAfterRefresh();
      if (valueOf(samples, 'upkeep_docker_log_read_errors') !== 0) throw new Error('not yet');
    });
    t.equal(valueOf(samples, 'upkeep_docker_container_log_bytes', { container: names.exited }), 9, 'the size of what was written');
    t.ok(app.logs.some((entry) => entry.msg === 'container log files readable again'));
  });

  t.test('faults: a missing socket is up 0; once it exists the next scrape is up 1', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'upkeep-docker-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const socketPath = join(dir, 'run', 'docker.sock');
    const app = await testApp(t, dockerYaml(`socketPath: ${socketPath}`));
    const down = await app.scrape();
    t.equal(down.status, 200, '/metrics still answers');
    t.equal(valueOf(down.samples, 'upkeep_docker_up', { target: 'local' }), 0);
    t.equal(valueOf(down.samples, 'upkeep_collector_up', { collector: 'docker', target: 'local' }), 0);
    t.match(app.logs.find((entry) => entry.msg === 'collection failed'), { collector: 'docker', err: /ENOENT/ });
    await mkdir(join(dir, 'run'));
    await symlink(DOCKER_SOCKET, socketPath);
    const back = await app.scrape();
    t.equal(valueOf(back.samples, 'upkeep_docker_up', { target: 'local' }), 1, 'up on the next scrape, same app');
    t.equal(valueOf(back.samples, 'upkeep_collector_up', { collector: 'docker', target: 'local' }), 1);
    t.equal(valueOf(back.samples, 'upkeep_docker_container_running', { container: names.running }), 1);
  });

  t.test('a container removed between the list and the inspect is skipped; a dead daemon is an error', async (t) => {
    const ghost = { Id: 'f'.repeat(64), Names: [], State: 'exited' };
    t.equal(containerName(ghost), 'ffffffffffff', 'no name: the short id, as docker ps shows it');
    const sizes = await new ContainerLogs(docker).measure([ghost]);
    t.same([sizes.bytes.size, sizes.errors], [0, 0], 'the daemon answers 404 and the container has no log to measure');
    const unreachable = new Docker({ socketPath: join(tmpdir(), `${prefix}-missing.sock`) });
    await t.rejects(new ContainerLogs(unreachable).measure([ghost]), /ENOENT/);
  });

  t.test('a daemon reached by host and port that does not answer is up 0', async (t) => {
    const app = await testApp(t, dockerYaml(`host: 127.0.0.1\n      port: ${await freePort()}`));
    const { status, samples } = await app.scrape();
    t.equal(status, 200);
    t.equal(valueOf(samples, 'upkeep_docker_up', { target: 'local' }), 0);
    t.match(app.logs.find((entry) => entry.msg === 'collection failed'), { err: /ECONNREFUSED/ });
  });
});
