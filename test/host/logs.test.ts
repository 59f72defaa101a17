import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { tempDir } from '../http/helpers.js';
import { appFromYaml, sample } from './app.js';

t.test('log directory bytes and file count, recursive, symlinks not followed', async (t) => {
  const dir = await tempDir(t, 'upkeep-logs-');
  const outside = await tempDir(t, 'upkeep-outside-');
  await writeFile(join(dir, 'app.log'), 'x'.repeat(1000));
  await writeFile(join(dir, 'app.log.1.gz'), 'y'.repeat(500));
  await writeFile(join(dir, 'notes.txt'), 'z'.repeat(300));
  await mkdir(join(dir, 'worker'));
  await writeFile(join(dir, 'worker', 'worker.log'), 'w'.repeat(200));
  await writeFile(join(outside, 'huge.log'), 'h'.repeat(5000));
  await symlink(join(outside, 'huge.log'), join(dir, 'linked.log'));
  await symlink(outside, join(dir, 'linked-dir'));

  const app = await appFromYaml(`targets:\n  logs:\n    - { name: refnet, dir: ${dir}, pattern: "*.log*" }\n`);
  t.teardown(() => app.fastify.close());
  const body = (await app.fastify.inject({ method: 'GET', url: '/metrics' })).body;
  t.equal(sample(body, 'upkeep_log_dir_bytes{name="refnet"}'), 1700);
  t.equal(sample(body, 'upkeep_log_files{name="refnet"}'), 3);
  const age = sample(body, 'upkeep_collector_cache_age_seconds{collector="logs",target="refnet",reading="log_dir"}');
  t.ok(age !== undefined && age >= 0 && age < 60, `a fresh reading, younger than its refresh interval (${age})`);
});

t.test('a missing log directory is reported as present 0; an unreadable one fails only its own collection', async (t) => {
  const dir = await tempDir(t, 'upkeep-logs-');
  await symlink(join(dir, 'loop'), join(dir, 'loop'));
  const app = await appFromYaml([
    'targets:',
    '  logs:',
    '    - { name: gone, dir: /nonexistent/logs }',
    `    - { name: loop, dir: ${dir}/loop }`,
    `    - { name: here, dir: ${dir} }`,
    '  disks: [{ path: / }]',
  ].join('\n'));
  t.teardown(() => app.fastify.close());
  const body = (await app.fastify.inject({ method: 'GET', url: '/metrics' })).body;
  t.equal(sample(body, 'upkeep_collector_up{collector="logs",target="gone"}'), 1, 'a missing directory is a reading');
  t.equal(sample(body, 'upkeep_log_dir_present{name="gone"}'), 0);
  t.equal(sample(body, 'upkeep_log_dir_bytes{name="gone"}'), 0);
  t.equal(sample(body, 'upkeep_log_files{name="gone"}'), 0);
  t.equal(sample(body, 'upkeep_log_dir_present{name="here"}'), 1);
  t.equal(sample(body, 'upkeep_collector_up{collector="logs",target="loop"}'), 0, 'ELOOP is an error, not a missing directory');
  t.equal(sample(body, 'upkeep_log_dir_present{name="loop"}'), undefined);
  t.equal(sample(body, 'upkeep_collector_up{collector="disks",target="/"}'), 1);
});
