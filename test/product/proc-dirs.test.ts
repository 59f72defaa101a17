import t from 'tap';
import { upkeep, writeConfig } from './installed.js';

/**
 * A directory upkeep must make where mkdir refuses it: under /proc, node's own recursive mkdir
 * never returned (it spun a thread at 100 % CPU), so `upkeep rules --out` and `upkeep run` with a
 * state.dir there hung until killed. The installed package now fails at once and says where.
 */
const NOWHERE = '/proc/upkeep-no-such-dir';

t.test('upkeep rules --out under /proc exits 1 and names the directory', async (t) => {
  const rules = await upkeep(['rules', '--out', NOWHERE], { timeoutMs: 20_000 });
  t.same([rules.code, rules.stdout, rules.stderr], [1, '', `--out ${NOWHERE}: cannot write upkeep.rules.yml (ENOENT)\n`]);
});

t.test('upkeep run with state.dir under /proc finishes, and logs why the journal cannot be written', async (t) => {
  const { file } = await writeConfig(t, { state: { dir: `${NOWHERE}/state` }, targets: { disks: [{ path: '/' }] } });
  const run = await upkeep(['run', 'files.cleanup', '--param', 'name=x', '--config', file], { timeoutMs: 20_000 });
  t.equal(run.code, 1, 'it exits (1: the run was rejected) instead of hanging');
  t.match(run.stdout, /^run \S+: files\.cleanup \(cli\)\nstatus: rejected\n/);
  const errors = run.stderr.split('\n').filter((line) => line.includes('"level":50')).map((line): unknown => JSON.parse(line));
  t.equal(errors.length, 1, run.stderr);
  t.match(errors[0], { msg: 'cannot write the journal', err: { code: 'ENOENT', syscall: 'mkdir', path: NOWHERE } });
});
