import { execFile } from 'node:child_process';
import { chmod, readdir } from 'node:fs/promises';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { waitFor } from '../fixtures/ports.js';
import { tempDir } from '../http/helpers.js';
import { spawnInstalled, upkeep } from './installed.js';

t.test('the installed upkeep demo --once fixes every problem and exits 0, leaving nothing behind', async (t) => {
  // Before, it crashed at its first look at the metrics: it read them through Fastify's inject,
  // which the installed build leaves out (only `npm run demo`, from the sources, worked).
  const tmp = await tempDir(t);
  await chmod(tmp, 0o755);
  const { code, stdout, stderr } = await upkeep(['demo', '--once'], { env: { TMPDIR: tmp }, timeoutMs: 300_000 });
  t.equal(code, 0, stderr);
  const rows = stdout.split('\n').filter((line) => / (fixed|NOT FIXED) /.test(line));
  t.equal(rows.length, 5, 'one row per problem');
  for (const row of rows) t.match(row, /\(\w+, success\)\s+fixed /, row);
  t.same(await readdir(tmp), [], 'nothing left in its TMPDIR');
});

/**
 * Ctrl-C during the installed `upkeep demo`: before, node's default ended it at once, leaving its
 * throwaway servers' directories in TMPDIR (four, the PostgreSQL cluster among them). Now it stops
 * the servers, removes the directories and exits 130. The demo gets its own TMPDIR, so what it
 * leaves is this test's to see, and any process started with a path in it.
 */
async function interruptDemo(t: Test, when: (stdout: string) => boolean) {
  const tmp = await tempDir(t);
  // The demo's PostgreSQL runs as the user postgres, which must reach its cluster in there.
  await chmod(tmp, 0o755);
  const { child, exited, stdout, stderr } = await spawnInstalled(['demo', '--once'], { env: { TMPDIR: tmp } });
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  await waitFor('the demo to reach the moment', async () => {
    if (child.exitCode !== null) throw new Error(`exited early: ${stdout()}${stderr()}`);
    if (!when(stdout())) throw new Error('not yet');
  }, 120_000, 100);
  child.kill('SIGINT');
  const [code] = await exited;
  // What is left: the demo's files, and any process started with a path in its directory.
  const { stdout: processes } = await promisify(execFile)('ps', ['-eo', 'args']);
  return { code, stdout: stdout(), stderr: stderr(), left: await readdir(tmp), running: processes.split('\n').filter((line) => line.includes(tmp)) };
}

t.test('Ctrl-C while the installed demo starts its servers: they are stopped and removed, exit 130', async (t) => {
  // The first line is printed before PostgreSQL starts; the signal lands in the middle of the start.
  const stopped = await interruptDemo(t, (stdout) => stdout.includes('upkeep demo: starting'));
  t.equal(stopped.code, 130, stopped.stdout + stopped.stderr);
  t.match(stopped.stdout, /^Interrupted: stopping upkeep and removing the throwaway servers\.\.\.$/m);
  t.same(stopped.left, [], 'nothing left in its TMPDIR');
  t.same(stopped.running, [], 'no server left running');
});

t.test('Ctrl-C while the installed demo waits for the alerts: the same, exit 130', async (t) => {
  const stopped = await interruptDemo(t, (stdout) => stdout.includes('Waiting for the shipped alert rules'));
  t.equal(stopped.code, 130, stopped.stdout + stopped.stderr);
  t.match(stopped.stdout, /^Interrupted: stopping upkeep and removing the throwaway servers\.\.\.$/m);
  t.notMatch(stopped.stdout, /journal: /, 'no summary of a tour that did not end');
  t.same(stopped.left, [], 'nothing left in its TMPDIR');
  t.same(stopped.running, [], 'no server left running');
});
