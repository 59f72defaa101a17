import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { z } from 'zod';
import { idempotencyKey } from '../../src/engine/guards/idempotency.js';
import { openStateStore } from '../../src/engine/state/open.js';
import { newRunId } from '../../src/engine/state/run-id.js';
import { bufferLogger } from '../fixtures/log.js';
import { webhookPayload } from '../fixtures/webhook-payload.js';
import { testConfig } from '../http/helpers.js';
import { serveInstalled } from './installed.js';
import { allRuns, dryRunConfig, postAlerts, untilDryRun } from './runs.js';

const reply = z.object({ accepted: z.array(z.object({ runId: z.string(), fingerprint: z.string(), status: z.string() })), ignored: z.array(z.unknown()) });

t.test('the installed serve: an alert whose claim cannot be written is not acknowledged and runs nothing; once the disk is back, its re-delivery runs', async (t) => {
  const { file, dir } = await dryRunConfig(t);
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
  const runs = await untilDryRun(served.base);
  t.same(runs.map((run) => [run.id, run.status]), [[accepted?.runId, 'dry_run']]);

  t.equal(await served.stop(), 0);
  const failed = served.logLines().filter((line) => line.msg === 'request failed');
  t.equal(failed.length, 1, 'the failure is logged once');
  t.match(failed[0], { level: 50, err: { message: /^(EEXIST|ENOTDIR)/ } });
});

t.test('the installed serve: an alert claimed by a run that never reached the journal (upkeep killed between the two) runs when re-delivered', async (t) => {
  const { file, dir } = await dryRunConfig(t);
  // What an upkeep killed after claiming the alert, before its run's queued line, left: the claim, two minutes ago.
  const startsAt = '2026-12-02T10:00:00.000Z';
  const holder = newRunId(Date.now() - 120_000);
  const left = await openStateStore(testConfig({ state: { dir: join(dir, 'state') } }), bufferLogger().log, Date.now);
  const key = idempotencyKey({ fingerprint: 'orphan-1', startsAt, alertname: 'DiskUsageHigh', labels: {} }, 'files.cleanup');
  t.equal(await left.guards.claimAlert(key, holder, Date.now() - 120_000), undefined);
  await left.close();

  const served = await serveInstalled(t, file);
  const delivered = await postAlerts(served.base, await webhookPayload({ labels: { alertname: 'DiskUsageHigh', path: '/' }, fingerprint: 'orphan-1', startsAt }));
  t.equal(delivered.status, 202);
  const { accepted, ignored } = reply.parse(delivered.body);
  t.same(ignored, [], 'not a duplicate of the run that never started');
  t.match(accepted, [{ fingerprint: 'orphan-1', status: 'queued' }]);
  const runs = await untilDryRun(served.base);
  t.same(runs.map((run) => [run.id, run.status]), [[accepted[0]?.runId, 'dry_run']]);
  const again = reply.parse((await postAlerts(served.base, await webhookPayload({ labels: { alertname: 'DiskUsageHigh', path: '/' }, fingerprint: 'orphan-1', startsAt }))).body);
  t.match(again.accepted, [{ fingerprint: 'orphan-1', status: 'duplicate' }], 'the next re-delivery is a duplicate of the run that did happen');
  const duplicate = await (await fetch(`${served.base}/runs/${again.accepted[0]?.runId ?? ''}`)).json();
  t.match(duplicate, { status: 'duplicate', duplicateOf: accepted[0]?.runId });

  t.equal(await served.stop(), 0);
  t.same(served.logLines().filter((line) => typeof line.level === 'number' && line.level >= 40).map((line) => [line.level, line.msg, line.runId, line.claimedBy, line.reason]),
    [[40, "the alert's claim should have been given back; claiming it again", accepted[0]?.runId, holder, 'the run that held it never reached the journal (upkeep stopped in between)']]);
});
