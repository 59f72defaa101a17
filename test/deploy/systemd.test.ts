import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { z } from 'zod';
import { freePort, waitFor } from '../fixtures/ports.js';
import { startPostgres } from '../fixtures/postgres.js';
import { promtoolCheckMetrics } from '../fixtures/promtool.js';
import { installedPackage } from '../product/installed.js';
import { baseImage } from './base-image.js';
import { docBlocks, Substitutions } from './doc-steps.js';
import { command, docker, ROOT, systemdImage, systemdSkipReason, type ScriptResult } from './docker.js';

/**
 * deploy/systemd/upkeep.service: `systemd-analyze verify` and `security` on the committed unit, and
 * docs/deploy.md's systemd steps run as written inside a container whose PID 1 is systemd (the
 * host has none): install the packed package, the unit, the user, the credentials and the config,
 * start the service with all its sandboxing, back up through the API, and upgrade.
 */
const ID = `${process.pid}`;
const CONTAINER = `upkeep-test-systemd-${ID}`;
const UNIT = join(ROOT, 'deploy', 'systemd', 'upkeep.service');
const runsReply = z.object({ runs: z.array(z.object({ id: z.string(), remediation: z.string(), status: z.string() })) });

function phase(t: Test, name: string, started: number): void {
  t.comment(`${name}: ${Math.round((Date.now() - started) / 1000)} s`);
}

function ok(t: Test, result: ScriptResult, what: string): void {
  t.equal(result.code, 0, `${what} exits 0${result.code === 0 ? '' : `\n${result.stdout}\n${result.stderr}`}`);
}

/** The exposure score `systemd-analyze security` prints on its last line. */
function exposure(output: string): number {
  const match = /Overall exposure level for upkeep\.service: (\d+\.\d+)/.exec(output);
  if (!match?.[1]) throw new Error(`no exposure level in: ${output}`);
  return Number(match[1]);
}

t.test('the unit file: systemd-analyze security, offline, scores it under 4.0', async (t) => {
  const result = await command(['systemd-analyze', 'security', '--offline=true', '--no-pager', UNIT]);
  ok(t, result, 'systemd-analyze security --offline=true');
  const score = exposure(result.stdout);
  t.comment(`systemd-analyze security --offline=true deploy/systemd/upkeep.service: ${score}`);
  t.ok(score < 4.0, `exposure ${score} is under 4.0`);
});

t.test('every setting of the unit is explained in docs/deploy.md', async (t) => {
  const unit = await readFile(UNIT, 'utf8');
  const doc = await readFile(join(ROOT, 'docs', 'deploy.md'), 'utf8');
  const table = doc.slice(doc.indexOf('**What each setting of the unit is for.**'), doc.indexOf('## Kubernetes'));
  const settings = [...unit.matchAll(/^#?([A-Z][A-Za-z]+)=/gm)].map((match) => match[1] ?? '');
  t.ok(settings.length > 30);
  for (const setting of new Set(settings)) t.match(table, `\`${setting}=`, `${setting}= is in the table`);
});

const skip = await systemdSkipReason();

t.test('docs/deploy.md, systemd: install, start with every sandboxing setting, back up through the API, upgrade', { skip }, async (t) => {
  const pg = await startPostgres();
  t.teardown(() => pg.destroy());
  await pg.query("CREATE ROLE upkeep LOGIN PASSWORD 'the password of the role upkeep' IN ROLE pg_monitor, pg_read_all_data");
  await pg.query('CREATE DATABASE app');
  await pg.query('CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL); INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 300) g', [], 'app');

  let started = Date.now();
  const [base, pack] = await Promise.all([baseImage(), installedPackage()]);
  phase(t, 'base image and packed package', started);
  const { version } = z.object({ version: z.string() }).parse(JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')));
  const tarball = `upkeep-${version}.tgz`;
  await stat(join(pack, tarball));
  started = Date.now();
  await systemdImage(base);
  phase(t, 'systemd image', started);
  started = Date.now();
  t.teardown(() => docker(['rm', '--force', CONTAINER]).catch(() => undefined));
  await docker(['run', '--detach', '--name', CONTAINER, '--network', 'host',
    // What systemd needs to set up each service's namespaces and cgroups inside a container.
    '--cap-add', 'SYS_ADMIN', '--security-opt', 'seccomp=unconfined', '--volume', '/sys/fs/cgroup:/sys/fs/cgroup:rw',
    '--volume', `${ROOT}:/src:ro`, '--volume', `${pack}:/pack:ro`, 'upkeep-test-cache:systemd']);
  const state = await waitFor('systemd to finish booting in the container', async () => {
    const result = await command(['docker', 'exec', CONTAINER, 'systemctl', 'is-system-running', '--wait']);
    // Before its bus is up, systemctl cannot ask; "starting" does not happen with --wait.
    if (/Failed to connect to bus/.test(result.stderr)) throw new Error(result.stderr);
    // "offline": PID 1 is still the shell that makes / shared before it execs systemd. Going on
    // then races systemd's own mounts (its /tmp hid the tarball the install step had copied).
    const reply = result.stdout.trim();
    if (reply === 'offline') throw new Error('systemd is not PID 1 yet');
    return reply;
  }, 60_000, 250);
  t.match(state, /^(running|degraded)$/, 'systemd is up');
  phase(t, 'systemd boot', started);
  const inside = (script: string) => command(['docker', 'exec', '--workdir', '/src', CONTAINER, 'bash', '-euo', 'pipefail', '-c', script]);

  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const substitutions = new Substitutions([
    // The checkout is read-only here and already packed by the product tests: the same tarball.
    // The file name npm pack printed, not a glob: /tmp may still hold the tarball of the version
    // before, and /tmp/upkeep-*.tgz installed whichever sorted last (0.9.0 after 0.10.0).
    ['"$(npm pack --pack-destination /tmp | tail -n 1)"', `"$(cp /pack/${tarball} /tmp/ && echo ${tarball})"`],
    ['http://127.0.0.1:9630/', `${url}/`],
  ]);
  const blocks = (await docBlocks('systemd')).map((block) => substitutions.apply(block));
  t.equal(blocks.length, 5, 'install, user and secrets, check and start, use, upgrade');
  const [install = '', prepare = '', start = '', use = '', upgrade = ''] = blocks;

  started = Date.now();
  ok(t, await inside(install), 'pack, install the package and the unit');
  phase(t, 'install (npm install in the container)', started);
  ok(t, await inside(prepare), 'user, backup directory, credentials, config');
  // "Edit /etc/upkeep/upkeep.yml for your targets": this test's PostgreSQL and a free port, and
  // every address, as for a Prometheus on another host: under the unit's RestrictAddressFamilies=
  // without AF_NETLINK, serve died on 0.0.0.0 listing the interfaces (the test only talks to 127.0.0.1).
  ok(t, await inside(`sed -i -e 's/127.0.0.1:5432/127.0.0.1:${pg.port}/' -e 's/port: 9630/port: ${port}/' -e 's/host: 127.0.0.1/host: 0.0.0.0/' /etc/upkeep/upkeep.yml`), 'edit the config');

  const verify = await command(['docker', 'exec', CONTAINER, 'systemd-analyze', 'verify', '/etc/systemd/system/upkeep.service']);
  t.same([verify.code, verify.stdout + verify.stderr], [0, ''], 'systemd-analyze verify is clean');
  started = Date.now();
  const startStep = await inside(start);
  ok(t, startStep, 'check-config, verify, enable --now, security');
  t.match(startStep.stdout, /^config OK\n/im, 'check-config with the credentials named by hand');
  const score = exposure(startStep.stdout);
  t.comment(`systemd-analyze security upkeep.service (loaded): ${score}`);
  t.ok(score < 4.0, `exposure ${score} is under 4.0`);
  await waitFor('upkeep.service to answer /healthz', async () => {
    const response = await fetch(`${url}/healthz`);
    if (!response.ok) throw new Error(`status ${response.status}`);
  }, 60_000, 250);
  phase(t, 'start', started);

  started = Date.now();
  const used = await inside(use);
  ok(t, used, 'readyz, a backup through the API, the journal');
  t.match(used.stdout, /"status":"success"/, 'the backup run succeeded');
  // The backup ran on the executor thread, which lives a minute after its last run: its nice value now.
  const nice = await inside('pid=$(systemctl show -p MainPID --value upkeep); for task in /proc/$pid/task/*; do cut -d" " -f19 "$task/stat"; done | sort -n | uniq -c');
  ok(t, nice, "the nice values of the service's threads");
  t.match(nice.stdout, /^\s+1 0\n\s+\d+ 10\n$/, 'the main thread at nice 0, every other (the executor\'s among them) at 10 under the unit\'s system call filter');
  const listing = await inside('cd /var/backups/upkeep && for f in app_*.sql.gz; do stat -c "%n %U" "$f"; gzip -t "$f"; done');
  ok(t, listing, 'the backup is a valid gzip');
  t.match(listing.stdout, /^app_\d{8}_\d{6}\.sql\.gz upkeep\n$/, 'one backup, owned by the user upkeep');
  await pg.query('CREATE DATABASE restored');
  const restored = await inside(`gunzip -c /var/backups/upkeep/app_*.sql.gz | psql -v ON_ERROR_STOP=1 -q -h 127.0.0.1 -p ${pg.port} -U postgres -d restored`);
  ok(t, restored, 'the dump restores');
  t.same(await pg.query('SELECT count(*)::int AS n FROM orders', [], 'restored'), [{ n: 300 }]);

  const metrics = await (await fetch(`${url}/metrics`)).text();
  const promtool = await promtoolCheckMetrics(metrics);
  t.same([promtool.code, promtool.output], [0, ''], 'promtool check metrics finds nothing');
  t.match(metrics, /^upkeep_postgres_up\{target="main"\} 1$/m);

  const owner = await inside('pid=$(systemctl show -p MainPID --value upkeep); stat -c "%U %u" /proc/$pid; readlink /var/lib/upkeep; ls /var/lib/private/upkeep');
  ok(t, owner, 'the main process and the state directory');
  const [user = '', stateLink = '', ...stateFiles] = owner.stdout.trim().split('\n');
  t.match(user, /^upkeep [1-9]\d*$/, 'runs as the user upkeep, not root');
  t.equal(stateLink, 'private/upkeep', 'StateDirectory under DynamicUser');
  t.ok(stateFiles.length > 0, `the journal is in the state directory: ${stateFiles.join(', ')}`);
  const token = (await inside('cat /etc/upkeep/credentials/token')).stdout.trim();
  const journal = (await inside('journalctl -o cat _SYSTEMD_UNIT=upkeep.service')).stdout.split('\n').filter((line) => line !== '');
  t.ok(journal.length > 0);
  t.same(journal.filter((line) => !line.startsWith('{')), [], 'every line upkeep logs is JSON');
  t.notOk(journal.some((line) => line.includes(token)), 'the token is never logged');
  // The main thread lowers its helpers, and the executor thread itself: the unit's system call filter lets them.
  t.same(journal.filter((line) => line.includes('priority')), [], 'the threads were lowered (setpriority allowed)');
  t.same(journal.filter((line) => /"level":(50|60)[,}]/.test(line)), [], 'nothing logged at error or fatal');
  const before = runsReply.parse(await (await fetch(`${url}/runs`)).json()).runs;
  t.match(before, [{ remediation: 'backup.pg_dump', status: 'success' }]);

  phase(t, 'use, restore, checks', started);
  started = Date.now();
  ok(t, await inside(upgrade), 'upgrade: install over, restart');
  await waitFor('the restarted service to answer /healthz', async () => {
    const response = await fetch(`${url}/healthz`);
    if (!response.ok) throw new Error(`status ${response.status}`);
  }, 60_000, 250);
  phase(t, 'upgrade', started);
  t.same(runsReply.parse(await (await fetch(`${url}/runs`)).json()).runs.map((one) => one.id), before.map((one) => one.id), 'the journal survived the upgrade');
  t.same(substitutions.missing(), [], 'every value the test changes is still in the doc');
});
