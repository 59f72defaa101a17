import t, { type Test } from 'tap';
import { z } from 'zod';
import { runRecordSchema } from '../../src/engine/journal.js';
import { waitFor } from '../fixtures/ports.js';
import { tempDir, VACUUM_RULE, webhookPayload } from '../http/helpers.js';
import { startTestPostgres, tableStats, tableWithDeadTuples } from '../actions/postgres-fixture.js';
import { serveInstalled, writeConfig, type Served } from './installed.js';

const page = z.object({ runs: z.array(runRecordSchema), next: z.string().nullable() });
const webhookReply = z.object({ accepted: z.array(z.object({ runId: z.string(), status: z.string() })), ignored: z.array(z.unknown()) });

async function postWebhook(t: Test, served: Served, payload: unknown): Promise<z.infer<typeof webhookReply>> {
  const response = await fetch(`${served.base}/alertmanager`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(payload) });
  t.equal(response.status, 202);
  return webhookReply.parse(await response.json());
}

async function runsOf(served: Served): Promise<z.infer<typeof page>['runs']> {
  const response = await fetch(`${served.base}/runs?limit=100`);
  return page.parse(await response.json()).runs;
}

t.test('three installed replicas on one PostgreSQL state store: an alert sent to all three vacuums once, and every replica lists every run', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await server.query('create database upkeep');
  await tableWithDeadTuples(server, 'app', 'orders');
  const config = {
    targets: { postgres: [{ name: 'main', url: server.url('app') }] },
    remediation: { rules: [VACUUM_RULE] },
  };
  // Each replica has its own state dir (writeConfig makes one) and the one shared store.
  const files = await Promise.all([1, 2, 3].map(async () => {
    const { file } = await writeConfig(t, { ...config, state: { dir: await tempDir(t), postgres: { url: server.url('upkeep') } } });
    return file;
  }));
  const replicas = await Promise.all(files.map((file) => serveInstalled(t, file)));
  const pids = replicas.map((replica) => replica.child.pid);

  const payload = await webhookPayload();
  const replies = await Promise.all(replicas.map((replica) => postWebhook(t, replica, payload)));
  const accepted = replies.flatMap((reply) => reply.accepted);
  t.same(accepted.map((run) => run.status).sort(), ['duplicate', 'duplicate', 'queued'], 'one replica claimed the alert, the others were told it is handled');
  const runId = accepted.find((run) => run.status === 'queued')?.runId ?? '';

  // Asked of every replica: each sees the run that one of them executes.
  for (const replica of replicas) {
    const run = await waitFor(`run ${runId} on ${replica.base}`, async () => {
      const record = runRecordSchema.parse(await (await fetch(`${replica.base}/runs/${runId}`)).json());
      if (record.status === 'queued' || record.status === 'running') throw new Error(`still ${record.status}`);
      return record;
    }, 60_000, 100);
    t.equal(run.status, 'success', `finished, as ${replica.base} sees it`);
  }
  t.equal((await tableStats(server, 'app', 'orders')).vacuumCount, 1, 'the table was vacuumed once');

  const again = await Promise.all(replicas.map((replica) => postWebhook(t, replica, payload)));
  t.same(again.flatMap((reply) => reply.accepted.map((run) => run.status)), ['duplicate', 'duplicate', 'duplicate'], 'a re-delivery to each is a duplicate');
  const listings = await Promise.all(replicas.map((replica) => runsOf(replica)));
  const ids = (runs: readonly { id: string }[]) => runs.map((run) => run.id);
  t.same(ids(listings[1] ?? []), ids(listings[0] ?? []), 'replica 2 lists what replica 1 does');
  t.same(ids(listings[2] ?? []), ids(listings[0] ?? []), 'and so does replica 3');
  const runs = listings[0] ?? [];
  t.equal(runs.length, 6, 'three deliveries of two rounds, each journalled once');
  t.same(runs.filter((run) => run.status === 'success').map((run) => run.id), [runId], 'one run executed');
  t.same(new Set(runs.map((run) => run.pid)), new Set(pids), 'each record names the replica (host and pid) that journalled it');
  t.ok(runs.every((run) => typeof run.host === 'string' && run.host !== ''));
  t.equal((await tableStats(server, 'app', 'orders')).vacuumCount, 1, 'still once');

  for (const replica of replicas) t.equal(await replica.stop(), 0, replica.output());
  const lines = replicas.flatMap((replica) => replica.logLines());
  t.equal(lines.filter((line) => line.msg === 'state.postgres: schema migrated').length, 1, 'the replicas starting at once migrated the schema once');
  t.same(lines.filter((line) => typeof line.level !== 'number' || line.level >= 50), [], 'no errors logged');
  t.notOk(replicas.some((replica) => replica.output().includes(server.url('upkeep'))), 'the state URL is not logged');
});
