import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { upkeep, writeConfig } from './installed.js';

/**
 * A directory upkeep must make where mkdir refuses it: under /proc, node's own recursive mkdir
 * never returned (it spun a thread at 100 % CPU), so `upkeep rules --out` and `upkeep run` with a
 * state.dir there hung until killed. The installed package now fails at once and says where; a
 * state.dir it cannot make or write stops `run` and `serve` before they start.
 */
const NOWHERE = '/proc/upkeep-no-such-dir';

t.test('upkeep rules --out under /proc exits 1 and names the directory', async (t) => {
  const rules = await upkeep(['rules', '--out', NOWHERE], { timeoutMs: 20_000 });
  t.same([rules.code, rules.stdout, rules.stderr], [1, '', `--out ${NOWHERE}: cannot write upkeep.rules.yml (ENOENT)\n`]);
});

t.test('upkeep run and upkeep serve with state.dir under /proc stop at once and say why', async (t) => {
  const { file } = await writeConfig(t, { state: { dir: `${NOWHERE}/state` }, targets: { disks: [{ path: '/' }] } });
  const message = `state.dir: cannot make or write ${NOWHERE}/state: ENOENT: no such file or directory, mkdir '${NOWHERE}'\n`;
  const run = await upkeep(['run', 'files.cleanup', '--param', 'name=x', '--config', file], { timeoutMs: 20_000 });
  t.same([run.code, run.stdout, run.stderr], [1, '', message], 'upkeep run: no run, exit 1');
  // Before, serve started, answered /readyz "ready" and failed every run with a 500.
  const served = await upkeep(['serve', '--config', file, '--port', '0'], { timeoutMs: 20_000 });
  t.same([served.code, served.stdout, served.stderr], [1, '', message], 'upkeep serve: exits 1 before it listens');
});

t.test('upkeep serve and run with a journal under state.dir they cannot open stop at once with one line, not node\'s stack', async (t) => {
  const { file, dir } = await writeConfig(t, { targets: { disks: [{ path: '/' }] } });
  // As a journal/ made by root (`sudo upkeep run`) is for upkeep's own user: a segment it cannot open.
  const segment = join(dir, 'state', 'journal', 'runs-00000001.jsonl');
  await mkdir(segment, { recursive: true });
  const message = `state.dir: cannot make or write ${join(dir, 'state')}: EISDIR: illegal operation on a directory, open '${segment}'\n`;
  const served = await upkeep(['serve', '--config', file, '--port', '0'], { timeoutMs: 20_000 });
  t.same([served.code, served.stdout, served.stderr], [1, '', message], 'upkeep serve: exits 1 before it listens');
  const run = await upkeep(['run', 'files.cleanup', '--param', 'name=x', '--config', file], { timeoutMs: 20_000 });
  t.same([run.code, run.stdout, run.stderr], [1, '', message], 'upkeep run: no run, exit 1');
});
