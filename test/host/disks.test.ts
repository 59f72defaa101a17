import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import t from 'tap';
import { diskUsage } from '../../src/collectors/disks.js';
import { appFromYaml, sample } from './app.js';

const run = promisify(execFile);

t.test('df arithmetic: reserved blocks count as neither used nor available', async (t) => {
  const usage = diskUsage({ bsize: 4096, blocks: 1000, bfree: 300, bavail: 250 });
  t.equal(usage.sizeBytes, 4096 * 1000);
  t.equal(usage.availBytes, 4096 * 250);
  t.equal(usage.usedRatio, 700 / 950);
  t.equal(diskUsage({ bsize: 4096, blocks: 0, bfree: 0, bavail: 0 }).usedRatio, 0);
});

t.test('upkeep_disk_used_ratio matches df Use% within 0.01 for every mounted path tested', async (t) => {
  const paths = ['/', '/tmp', '/dev/shm'];
  const app = await appFromYaml(`targets:\n  disks:\n${paths.map((p) => `    - path: ${p}`).join('\n')}\n`);
  t.teardown(() => app.fastify.close());
  const response = await app.fastify.inject({ method: 'GET', url: '/metrics' });
  t.equal(response.statusCode, 200);
  for (const path of paths) {
    const { stdout } = await run('df', ['-P', '-B1', path]);
    const fields = stdout.trim().split('\n')[1]!.split(/\s+/);
    const dfPercent = Number(fields[4]!.replace('%', '')) / 100;
    const ratio = sample(response.body, `upkeep_disk_used_ratio{path="${path}"}`);
    t.ok(ratio !== undefined && Math.abs(ratio - dfPercent) <= 0.01, `${path}: upkeep ${ratio} vs df ${dfPercent}`);
    t.equal(sample(response.body, `upkeep_disk_size_bytes{path="${path}"}`), Number(fields[1]), `${path}: size equals df's 1B-blocks`);
  }
});

t.test('a missing path is a failed collection, not a failed scrape', async (t) => {
  const app = await appFromYaml('targets:\n  disks:\n    - path: /nonexistent/upkeep\n    - path: /\n');
  t.teardown(() => app.fastify.close());
  const response = await app.fastify.inject({ method: 'GET', url: '/metrics' });
  t.equal(response.statusCode, 200);
  t.equal(sample(response.body, 'upkeep_collector_up{collector="disks",target="/nonexistent/upkeep"}'), 0);
  t.equal(sample(response.body, 'upkeep_collector_up{collector="disks",target="/"}'), 1);
});
