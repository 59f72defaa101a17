import { createServer } from 'node:http';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { startAlertmanager } from '../../src/demo/servers/alertmanager.js';
import { freePort, waitFor } from '../../src/demo/servers/ports.js';
import { startUntilReady } from '../../src/demo/servers/process.js';
import { startPrometheus } from '../../src/demo/servers/prometheus.js';
import { startRedis } from '../../src/demo/servers/redis.js';
import { appFromYaml } from '../host/app.js';
import { tempDir } from '../http/helpers.js';

t.test('prometheus scrapes upkeep, fires a rule, and alertmanager delivers it with the bearer token', async (t) => {
  const app = await appFromYaml('targets: { disks: [{ path: / }] }\n');
  t.teardown(() => app.fastify.close());
  const address = new URL(await app.fastify.listen({ host: '127.0.0.1', port: 0 }));

  const received: { authorization: string | undefined; body: string }[] = [];
  const receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => { body += chunk.toString(); });
    req.on('end', () => { received.push({ authorization: req.headers.authorization, body }); res.end(); });
  });
  const receiverPort = await freePort();
  await new Promise<void>((resolve) => receiver.listen(receiverPort, '127.0.0.1', resolve));
  t.teardown(() => receiver.close());

  const alertmanager = await startAlertmanager({ webhookUrl: `http://127.0.0.1:${receiverPort}/alertmanager`, bearerToken: 'sandbox-token' });
  t.teardown(() => alertmanager.destroy());
  const dir = await tempDir(t, 'upkeep-rules-');
  const rules = join(dir, 'rules.yml');
  await writeFile(rules, 'groups:\n  - name: t\n    rules:\n      - alert: DiskSeen\n        expr: upkeep_disk_used_ratio >= 0\n        labels: { severity: info }\n');
  const prometheus = await startPrometheus({ scrapeTarget: address.host, ruleFiles: [rules], alertmanager: `127.0.0.1:${alertmanager.port}` });
  t.teardown(() => prometheus.destroy());

  const series = await waitFor('a scrape', async () => {
    const result = await prometheus.query('upkeep_disk_used_ratio{path="/"}');
    if (result.length === 0) throw new Error('no data yet');
    return result;
  });
  t.equal(series[0]?.metric.job, 'upkeep');
  await t.rejects(prometheus.query('rate(upkeep_disk_used_ratio[5m'), /parse error/);
  const [sampled] = series;
  const at = sampled?.value[0] ?? 0;
  const range = await prometheus.queryRange('upkeep_disk_used_ratio{path="/"}', { start: at, end: at, step: 1 });
  t.same(range.map((one) => [one.metric.job, one.values]), [['upkeep', [[at, sampled?.value[1]]]]], 'a range query over one instant is that instant\'s sample');
  await t.rejects(prometheus.queryRange('up', { start: at, end: at - 1, step: 1 }), /end timestamp must not be before start time/);
  const delivery = await waitFor('the webhook', async () => {
    const first = received[0];
    if (!first) throw new Error('nothing delivered yet');
    return first;
  }, 60_000, 250);
  t.equal(delivery.authorization, 'Bearer sandbox-token');
  t.match(JSON.parse(delivery.body), { version: '4', status: 'firing', alerts: [{ labels: { alertname: 'DiskSeen', path: '/' } }] });
  t.match(await prometheus.alerts(), [{ labels: { alertname: 'DiskSeen' }, state: 'firing' }]);
});

t.test('a program that dies at start is reported with its output, and its directory is removed', async (t) => {
  const dir = await tempDir(t, 'upkeep-daemon-');
  const port = await freePort();
  await t.rejects(startUntilReady('prometheus', 'prometheus', ['--config.file=/nonexistent/prometheus.yml', `--web.listen-address=127.0.0.1:${port}`], `http://127.0.0.1:${port}`, dir), /prometheus exited: .*nonexistent/s);
  await t.rejects(stat(dir), { code: 'ENOENT' });
});

t.test('stopping Redis mid-BGSAVE ends its fork too, and destroy removes the directory', async (t) => {
  const server = await startRedis({ args: ['--enable-debug-command', 'yes'] });
  t.teardown(() => server.destroy());
  const client = server.client();
  t.teardown(() => client.disconnect());
  await client.call('DEBUG', 'POPULATE', '20000');
  // A millisecond a key: the save runs for about 20 s unless something ends it.
  await client.config('SET', 'rdb-key-save-delay', '1000');
  await client.bgsave();
  const info = async () => (await client.info('persistence')).includes('rdb_bgsave_in_progress:1');
  await waitFor('the BGSAVE fork to start', async () => { if (!(await info())) throw new Error('not yet'); });
  const serverPid = Number(/^process_id:(\d+)/m.exec(await client.info('server'))?.[1]);
  const forks = (await readFile(`/proc/${serverPid}/task/${serverPid}/children`, 'utf8')).trim().split(' ').map(Number);
  t.equal(forks.length, 1, 'one fork is saving');
  client.disconnect();
  await server.destroy();
  const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
  await waitFor('the fork to be gone', async () => { if (forks.some(alive)) throw new Error('still running'); });
  t.notOk(forks.some(alive), 'no fork outlives the server');
  await t.rejects(stat(server.dir), { code: 'ENOENT' }, 'the data directory is gone');
});
