import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, realpath, rm, rmdir, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { serveInstalled, upkeepBin, upkeepScript, writeConfig, type Served } from './installed.js';

const run = promisify(execFile);

/**
 * bin/upkeep, the command npm links into PATH, starts node with V8's helper threads sized to the
 * machine (one per CPU beyond the first, at most node's own four) and keeps a user's
 * --v8-pool-size from NODE_OPTIONS. Read from the running servers' command lines and threads.
 */
const SIZED = Math.min(4, Math.max(1, availableParallelism() - 1));

async function serve(t: Test, env: Record<string, string> = {}): Promise<{ served: Served; argv: string[]; threads: number }> {
  const { file } = await writeConfig(t, { targets: { disks: [{ path: '/' }] } });
  const served = await serveInstalled(t, file, { env });
  const pid = served.child.pid ?? 0;
  const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter((arg) => arg !== '');
  return { served, argv, threads: (await readdir(`/proc/${pid}/task`)).length };
}

t.test('the installed upkeep runs node with V8\'s helper threads sized to the CPUs, unless the user sized them', async (t) => {
  const script = await realpath(await upkeepScript());
  const sized = await serve(t);
  const own = await serve(t, { NODE_OPTIONS: '--v8-pool-size=4' });
  t.same(sized.argv.slice(0, 4), ['node', `--v8-pool-size=${SIZED}`, script, 'serve'], 'the process signalled is node itself, with the flag, running bin/upkeep.js');
  t.same(own.argv.slice(0, 3), ['node', script, 'serve'], 'a --v8-pool-size in NODE_OPTIONS is left to node');
  t.equal(own.threads - sized.threads, 4 - SIZED, `${availableParallelism()} CPUs: ${sized.threads} threads against ${own.threads} with node's four helpers`);
  t.equal(await sized.served.stop(), 0, 'it stops cleanly on SIGTERM');
});

t.test('OpenMP\'s thread count in the environment does not size V8\'s helpers (nproc would print it)', async (t) => {
  const script = await realpath(await upkeepScript());
  const { served, argv } = await serve(t, { OMP_NUM_THREADS: '8', OMP_THREAD_LIMIT: '8' });
  t.same(argv.slice(0, 4), ['node', `--v8-pool-size=${SIZED}`, script, 'serve'], `${availableParallelism()} CPUs, OMP_NUM_THREADS=8: --v8-pool-size=${SIZED}`);
  t.equal(await served.stop(), 0, 'it stops cleanly on SIGTERM');
});

/**
 * A CFS quota (a Kubernetes CPU limit, systemd's CPUQuota=) caps the helpers as fewer CPUs would.
 * The cgroups are real, made for the test, and the installed bin/upkeep starts inside them. On
 * this 2-CPU host one helper is the answer with or without a quota, so an `nproc` that prints 8
 * stands in for a bigger host, and a `node` that prints its first argument stands in for node;
 * both come first on PATH, the launcher itself is the installed one.
 */
const V2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
const CPU_ROOT = V2 ? '/sys/fs/cgroup' : '/sys/fs/cgroup/cpu';

async function cgroup(t: Test, parent: string, quota: number | null, period = 100_000): Promise<string> {
  const dir = await mkdtemp(join(parent, 'upkeep-test-'));
  t.teardown(() => rmdir(dir));
  if (V2) {
    await writeFile(join(parent, 'cgroup.subtree_control'), '+cpu');
    await writeFile(join(dir, 'cpu.max'), `${quota ?? 'max'} ${period}`);
  } else {
    await writeFile(join(dir, 'cpu.cfs_period_us'), String(period));
    await writeFile(join(dir, 'cpu.cfs_quota_us'), String(quota ?? -1));
  }
  return dir;
}

async function standIns(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'upkeep-stand-ins-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'nproc'), '#!/bin/sh\necho 8\n', { mode: 0o755 });
  await writeFile(join(dir, 'node'), '#!/bin/sh\necho "$1"\n', { mode: 0o755 });
  return dir;
}

/**
 * The flag bin/upkeep gives node when started by `sh -c PRELUDE`, in a mount namespace of its own
 * (so a PRELUDE may mount over /sys/fs/cgroup, as a container runtime does).
 */
async function flagAfter(prelude: string, shims: string): Promise<string> {
  const { stdout } = await run('unshare', ['--mount', 'sh', '-c', `${prelude}exec "$0"`, await upkeepBin()], { env: { ...process.env, PATH: `${shims}:${process.env['PATH'] ?? ''}` } });
  return stdout.trim();
}

const inside = (dir: string) => `echo $$ > '${dir}/cgroup.procs' && `;
// A container's cgroup mounted as the root, while /proc/self/cgroup names the host's path.
const mountedAsRoot = (dir: string) => `mount --bind '${dir}' '${CPU_ROOT}' && ${inside(CPU_ROOT)}`;

t.test('a CPU quota on the cgroup, or on one above it, sizes the helpers as that many CPUs would', async (t) => {
  const shims = await standIns(t);
  t.equal(await flagAfter('', shims), '--v8-pool-size=4', '8 CPUs, no quota: node\'s four');
  const limited = await cgroup(t, CPU_ROOT, 150_000);
  t.equal(await flagAfter(inside(limited), shims), '--v8-pool-size=1', 'a quota of 1.5 CPUs counts as 2: one helper');
  const wider = await cgroup(t, CPU_ROOT, 200_000, 50_000);
  t.equal(await flagAfter(inside(wider), shims), '--v8-pool-size=3', 'a quota of 4 CPUs (200 ms every 50 ms): three');
  const unlimited = await cgroup(t, CPU_ROOT, null);
  t.equal(await flagAfter(inside(unlimited), shims), '--v8-pool-size=4', 'no quota: the CPUs decide');
  const inner = await cgroup(t, limited, null);
  t.equal(await flagAfter(inside(inner), shims), '--v8-pool-size=1', 'a cgroup without a quota inside one with 1.5 CPUs: one helper');
  t.equal(await flagAfter(mountedAsRoot(wider), shims), '--v8-pool-size=3', 'the cgroup mounted as the root, as in a container whose /proc/self/cgroup names the host\'s path: three');
});

// This host's cgroups are v1, where the quota is in cpu.cfs_quota_us; v2 keeps "QUOTA PERIOD" or
// "max PERIOD" in cpu.max. Files of that format, mounted where v2 keeps them, check its reading.
const unified = readFileSync('/proc/self/cgroup', 'utf8').split('\n').some((line) => line.startsWith('0::'));
t.test('cgroup v2\'s cpu.max is read as v1\'s quota is', { skip: V2 ? 'this host\'s cgroups are v2: the test above read cpu.max' : !unified ? 'no cgroup v2 line in /proc/self/cgroup' : false }, async (t) => {
  const shims = await standIns(t);
  const fake = await mkdtemp(join(tmpdir(), 'upkeep-cgroup2-'));
  t.teardown(() => rm(fake, { recursive: true, force: true }));
  const v2 = (cpuMax: string) => flagAfter(`echo '${cpuMax}' > '${fake}/cpu.max' && mount --bind '${fake}' /sys/fs/cgroup && `, shims);
  t.equal(await v2('150000 100000'), '--v8-pool-size=1', '"150000 100000": 2 CPUs, one helper');
  t.equal(await v2('300000 100000'), '--v8-pool-size=2', '"300000 100000": two');
  t.equal(await v2('max 100000'), '--v8-pool-size=4', '"max 100000": no quota, the 8 CPUs decide');
});
