import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { z } from 'zod';
import { waitFor } from '../fixtures/ports.js';
import { serveInstalled, writeConfig } from './installed.js';
import { allRuns, FINAL } from './runs.js';

// 20 times what the queue holds. (5,000 took 40 s of the suite and showed nothing 2,000 does not.)
const ALERTS = 2000;
const PER_PAYLOAD = 50;
const webhookReply = z.object({ accepted: z.array(z.object({ runId: z.string(), fingerprint: z.string() })), ignored: z.array(z.unknown()) });

t.test('the installed serve with remediation.maxQueued 100: a burst of 2,000 alerts gets 429 for what does not fit; every acknowledged run finishes', async (t) => {
  const files = await mkdtemp(join(tmpdir(), 'upkeep-burst-files-'));
  t.teardown(() => rm(files, { recursive: true, force: true }));
  await writeFile(join(files, 'old.tmp'), 'x');
  const { file } = await writeConfig(t, {
    targets: { files: [{ name: 'scratch', dir: files }] },
    remediation: {
      // Dry runs have their own slots (dryRunConcurrency): these 2,000 never use the 4 of concurrency.
      dryRun: true, concurrency: 4, dryRunConcurrency: 2, maxQueued: 100,
      // files.cleanup is destructive: from an alert it needs allowRisk and an open window (this one always is).
      rules: [{ match: { alertname: 'DiskUsageHigh' }, remediation: 'files.cleanup', params: { name: 'scratch' }, allowRisk: 'destructive' }],
      windows: [{ name: 'always', cron: '* * * * *', durationMinutes: 1440 }],
    },
  });
  const served = await serveInstalled(t, file);
  const fixture = z.object({ alerts: z.array(z.record(z.string(), z.unknown())) }).passthrough()
    .parse(JSON.parse(await readFile(new URL('../fixtures/alertmanager-webhook.json', import.meta.url), 'utf8')));
  const [alert] = fixture.alerts;
  const payloads = Array.from({ length: ALERTS / PER_PAYLOAD }, (_, batch) => JSON.stringify({
    ...fixture, commonLabels: { alertname: 'DiskUsageHigh' }, groupLabels: { alertname: 'DiskUsageHigh' },
    alerts: Array.from({ length: PER_PAYLOAD }, (_, index) => ({ ...alert, labels: { alertname: 'DiskUsageHigh', path: '/' }, fingerprint: `burst-${batch}-${index}` })),
  }));
  const post = async (body: string) => {
    const response = await fetch(`${served.base}/alertmanager`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    return { status: response.status, retryAfter: response.headers.get('retry-after'), body: await response.json() as unknown };
  };

  // The burst: every payload at once.
  const replies = await Promise.all(payloads.map((body) => post(body)));
  t.same([...new Set(replies.map((reply) => reply.status))].sort(), [202, 429], 'each payload is acknowledged or refused, nothing else');
  const refused = replies.flatMap((reply, index) => (reply.status === 429 ? [index] : []));
  t.same(replies.filter((reply) => reply.status === 429 && (reply.retryAfter !== '5' || JSON.stringify(reply.body) !== JSON.stringify({ error: 'the run queue is full: at most 100 runs may wait (remediation.maxQueued); retry later' }))), [],
    'every 429 carries Retry-After and names the limit');
  const accepted = replies.filter((reply) => reply.status === 202).flatMap((reply) => webhookReply.parse(reply.body).accepted);
  t.equal(accepted.length + refused.length * PER_PAYLOAD, ALERTS, 'an acknowledged payload was queued whole');
  t.comment(`burst: ${accepted.length} alerts acknowledged, ${refused.length * PER_PAYLOAD} refused with 429`);

  const finished = await waitFor('every acknowledged run to finish', async () => {
    const runs = await allRuns(served.base);
    const open = runs.filter((run) => !FINAL.has(run.status));
    if (open.length > 0) throw new Error(`${open.length} runs not finished`);
    return runs;
  }, 120_000, 250);
  t.same(finished.map((run) => run.id).sort(), accepted.map((run) => run.runId).sort(), 'the journal holds exactly the acknowledged runs');
  t.same([...new Set(finished.map((run) => run.status))], ['dry_run'], 'and each reached its final status');

  // Refused whole, so each refused payload can be sent again as it was; the queue has drained.
  for (const index of refused) {
    const again = await waitFor(`payload ${index} to be accepted`, async () => {
      const reply = await post(payloads[index] ?? '');
      if (reply.status === 429) throw new Error('still full');
      return reply;
    }, 120_000, 20);
    t.equal(again.status, 202);
  }
  const all = await waitFor('every run to finish', async () => {
    const runs = await allRuns(served.base);
    if (runs.length !== ALERTS || runs.some((run) => !FINAL.has(run.status))) throw new Error(`${runs.length} runs`);
    return runs;
  }, 180_000, 500);
  t.equal(new Set(all.map((run) => run.alert?.fingerprint)).size, ALERTS, 'in the end every one of the 2,000 alerts has its run, none twice');

  t.ok(served.alive());
  t.equal(await served.stop(), 0);
  const lines = served.logLines();
  t.same(lines.filter((line) => 'notJson' in line), [], 'every log line is JSON');
  t.equal(lines.filter((line) => line.msg === 'run finished' && line.status === 'dry_run').length, ALERTS, 'one line per finished run');
});
