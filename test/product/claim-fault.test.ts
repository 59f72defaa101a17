import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { z } from 'zod';
import { waitFor } from '../fixtures/ports.js';
import { webhookPayload } from '../fixtures/webhook-payload.js';
import { serveInstalled, writeConfig } from './installed.js';
import { allRuns, postAlerts } from './runs.js';

const reply = z.object({ accepted: z.array(z.object({ runId: z.string(), fingerprint: z.string(), status: z.string() })), ignored: z.array(z.unknown()) });

t.test('the installed serve: an alert whose claim cannot be written is not acknowledged and runs nothing; once the disk is back, its re-delivery runs', async (t) => {
  const files = await mkdtemp(join(tmpdir(), 'upkeep-claim-files-'));
  t.teardown(() => rm(files, { recursive: true, force: true }));
  const { file, dir } = await writeConfig(t, {
    targets: { files: [{ name: 'scratch', dir: files }] },
    remediation: {
      dryRun: true,
      rules: [{ match: { alertname: 'DiskUsageHigh' }, remediation: 'files.cleanup', params: { name: 'scratch' }, allowRisk: 'destructive' }],
      windows: [{ name: 'always', cron: '* * * * *', durationMinutes: 1440 }],
    },
  });
  const served = await serveInstalled(t, file);
  const payload = await webhookPayload({ labels: { alertname: 'DiskUsageHigh', path: '/' }, fingerprint: 'claim-fault-1' });
  const post = () => postAlerts(served.base, payload);

  // The guards' directory turns into a file: the alert's claim cannot be written (as on a full or failing disk).
  const guards = join(dir, 'state', 'guards');
  await rm(guards, { recursive: true, force: true });
  await mkdir(join(dir, 'state'), { recursive: true });
  await writeFile(guards, '');
  t.same(await post(), { status: 500, body: { error: 'internal error' } }, 'not acknowledged: Alertmanager sends it again');
  t.same(await allRuns(served.base), [], 'and nothing is journalled');

  await rm(guards);
  const again = await post();
  t.equal(again.status, 202);
  const [accepted] = reply.parse(again.body).accepted;
  t.match(accepted, { fingerprint: 'claim-fault-1', status: 'queued' }, 'the re-delivery is claimed, not refused as a duplicate of the run that never started');
  const runs = await waitFor('the run to finish', async () => {
    const all = await allRuns(served.base);
    if (all[0]?.status !== 'dry_run') throw new Error(`runs: ${JSON.stringify(all.map((run) => run.status))}`);
    return all;
  });
  t.same(runs.map((run) => [run.id, run.status]), [[accepted?.runId, 'dry_run']]);

  t.equal(await served.stop(), 0);
  const failed = served.logLines().filter((line) => line.msg === 'request failed');
  t.equal(failed.length, 1, 'the failure is logged once');
  t.match(failed[0], { level: 50, err: { message: /^(EEXIST|ENOTDIR)/ } });
});
