import t from 'tap';
import { serveInstalled, writeConfig } from './installed.js';

/**
 * SIGHUP (a closed terminal, or `kill -HUP` meant as a reload): before, node's default ended the
 * installed server at once, as kill -9 would. It now logs one warning and goes on serving.
 */
t.test('the installed serve logs SIGHUP, keeps serving, and still stops cleanly on SIGTERM', async (t) => {
  const { file } = await writeConfig(t, { targets: { disks: [{ path: '/' }] } });
  const served = await serveInstalled(t, file);
  const pid = served.child.pid;
  if (pid === undefined) throw new Error('no pid');
  process.kill(pid, 'SIGHUP');
  const warned = await served.logged('the SIGHUP warning', (line) => line.signal === 'SIGHUP');
  t.match(warned, [{ level: 40, signal: 'SIGHUP', msg: 'SIGHUP ignored: upkeep does not reload its config; restart it to apply a change' }]);
  t.equal(warned.length, 1);
  t.ok(served.alive(), 'still running');
  t.equal((await fetch(`${served.base}/healthz`)).status, 200, 'and serving');
  t.equal(await served.stop(), 0, 'SIGTERM still stops it cleanly');
  t.same(served.logLines().filter((line) => typeof line.level !== 'number' || line.level >= 50), [], 'no errors logged');
});
