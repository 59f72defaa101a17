import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { z } from 'zod';
import { waitFor } from '../fixtures/ports.js';
import { smallDisk } from '../fixtures/small-disk.js';
import { webhookPayload } from '../fixtures/webhook-payload.js';
import { serveInstalled, writeConfig } from './installed.js';
import { allRuns, FINAL, postAlerts } from './runs.js';

const reply = z.object({ accepted: z.array(z.object({ runId: z.string(), status: z.string() })) });
const { dir: disk, skip, unmount } = await smallDisk('512k');
t.teardown(unmount);

t.test('the installed serve with its state on a disk that fills up: a request it cannot journal gets a 500 and runs nothing; once there is room, the retry runs and every refused final line is written', { skip }, async (t) => {
  const { file } = await writeConfig(t, {
    state: { dir: join(disk, 'state') },
    remediation: {
      dryRun: true,
      rules: [{ match: { alertname: 'DiskUsageHigh' }, remediation: 'files.cleanup', params: { name: 'scratch' }, allowRisk: 'destructive' }],
      windows: [{ name: 'always', cron: '* * * * *', durationMinutes: 1440 }],
    },
    targets: { files: [{ name: 'scratch', dir: disk }] },
  });
  const served = await serveInstalled(t, file);
  const post = async (fingerprint: string) => postAlerts(served.base, await webhookPayload({ labels: { alertname: 'DiskUsageHigh', path: '/' }, fingerprint }));
  const acknowledged = new Set<string>();
  const acknowledge = (answer: { status: number; body: unknown }) => {
    for (const accepted of reply.parse(answer.body).accepted) acknowledged.add(accepted.runId);
  };
  acknowledge(await post('before'));

  // Fill what is left of the disk: the guards' and the journal's last pages may still take a line or two.
  await writeFile(join(disk, 'filler'), Buffer.alloc(1024 * 1024)).catch(() => undefined);
  let refused: string | null = null;
  for (let attempt = 0; attempt < 20 && refused === null; attempt += 1) {
    const answer = await post(`full-${attempt}`);
    if (answer.status === 202) acknowledge(answer);
    else {
      t.same(answer, { status: 500, body: { error: 'internal error' } }, 'a request that cannot be journalled is not acknowledged');
      refused = `full-${attempt}`;
    }
  }
  t.not(refused, null, 'the full disk refuses a request');

  await rm(join(disk, 'filler'));
  const retry = await post(refused ?? '');
  t.equal(retry.status, 202);
  t.match(reply.parse(retry.body).accepted, [{ status: 'queued' }], 'the retry is claimed, not a duplicate of a run that never started');
  acknowledge(retry);
  // Runs acknowledged while the disk filled may have had their final lines refused: those are
  // written again every 5 s, so none reads `running` once there is room.
  const runs = await waitFor('every acknowledged run to be final in the journal', async () => {
    const all = await allRuns(served.base);
    if (all.length < acknowledged.size || all.some((entry) => !FINAL.has(entry.status))) throw new Error(`runs: ${JSON.stringify(all.map((entry) => entry.status))}`);
    return all;
  });
  t.equal(runs[0]?.status, 'dry_run', 'the retry ran');
  t.same(runs.filter((entry) => !acknowledged.has(entry.id)), [], 'the journal holds only acknowledged runs (a torn line is skipped)');
  t.equal(runs.length, acknowledged.size, 'and every acknowledged run');

  t.equal(await served.stop(), 0);
  const started = served.logLines().filter((line) => line.msg === 'run finished').map((line) => String(line.runId));
  t.same(started.filter((id) => !acknowledged.has(id)), [], 'no run started for a request answered 500');
  t.ok(served.logLines().some((line) => line.level === 50 && line.msg === 'request failed'), 'the failure is logged');
});
