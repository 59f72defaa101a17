import pg from 'pg';
import t, { type Test } from 'tap';
import { z } from 'zod';
import { runRecordSchema } from '../../src/engine/journal.js';
import { waitFor } from '../fixtures/ports.js';
import { tempDir, VACUUM_RULE, webhookPayload } from '../http/helpers.js';
import { startTestPostgres, tableStats, tableWithDeadTuples } from '../actions/postgres-fixture.js';
import { serveInstalled, writeConfig, type Served } from './installed.js';

const webhookReply = z.object({ accepted: z.array(z.object({ runId: z.string(), status: z.string() })), ignored: z.array(z.unknown()) });

async function deliver(t: Test, served: Served, payload: unknown): Promise<{ runId: string; status: string }> {
  const response = await fetch(`${served.base}/alertmanager`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(payload) });
  t.equal(response.status, 202);
  const [accepted] = webhookReply.parse(await response.json()).accepted;
  if (!accepted) throw new Error('the alert was not accepted');
  return accepted;
}

async function run(served: Served, runId: string): Promise<z.infer<typeof runRecordSchema>> {
  return runRecordSchema.parse(await (await fetch(`${served.base}/runs/${runId}`)).json());
}

t.test('kill -9 of the replica running a long VACUUM: no other run starts while its backend lives; a peer marks it interrupted within the lease; the re-delivered alert runs once', async (t) => {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await server.query('create database upkeep');
  await tableWithDeadTuples(server, 'app', 'orders');
  // Another session holds the table, so a VACUUM waits (a long VACUUM) for as long as the test likes.
  const locker = new pg.Client({ connectionString: server.url('app'), application_name: 'test-locker' });
  await locker.connect();
  await locker.query('begin');
  await locker.query('lock table orders in access exclusive mode');
  let lockerOpen = true;
  const releaseTable = async () => { if (lockerOpen) { lockerOpen = false; await locker.query('commit'); await locker.end(); } };
  t.teardown(releaseTable);

  const config = {
    targets: { postgres: [{ name: 'main', url: server.url('app') }] },
    remediation: { rules: [VACUUM_RULE], lockTimeoutSeconds: 600, cooldownSeconds: 0 },
  };
  const files = await Promise.all([1, 2, 3].map(async () => {
    const { file } = await writeConfig(t, { ...config, state: { dir: await tempDir(t), postgres: { url: server.url('upkeep'), leaseSeconds: 3 } } });
    return file;
  }));
  const [doomed, peerB, peerC] = await Promise.all(files.map((file) => serveInstalled(t, file)));
  if (!doomed || !peerB || !peerC) throw new Error('three replicas');
  const payload = await webhookPayload();

  const first = await deliver(t, doomed, payload);
  t.equal(first.status, 'queued');
  const vacuumOf = (runId: string) => server.query<{ pid: number }>(
    "select pid from pg_stat_activity where application_name = $1 and query like 'VACUUM%'", [`upkeep:${runId}`]);
  const [deadBackend] = await waitFor('the VACUUM to be waiting for the table', async () => {
    const rows = await vacuumOf(first.runId);
    if (rows.length !== 1) throw new Error('not running yet');
    return rows;
  }, 60_000, 100);
  const doomedPid = doomed.child.pid;
  const killedAt = Date.now();
  doomed.child.kill('SIGKILL');
  await waitFor('the replica to die', async () => { if (doomed.alive()) throw new Error('alive'); });

  // Alertmanager re-sends the alert; until the peers take the dead replica's run for interrupted
  // (its lease expired), every re-delivery is a duplicate of it.
  const peers = [peerB, peerC];
  let deliveries = 0;
  const rerun = await waitFor('a re-delivery to be queued', async () => {
    const peer = peers[deliveries % 2] ?? peerB;
    deliveries += 1;
    const reply = await deliver(t, peer, payload);
    if (reply.status === 'duplicate') throw new Error('still a duplicate');
    return { ...reply, peer };
  }, 120_000, 1000);
  t.equal(rerun.status, 'queued', 'a re-delivery was queued once the dead replica\'s run was interrupted');

  const interrupted = await run(peerB, first.runId);
  t.equal(interrupted.status, 'interrupted');
  t.match(interrupted.reason, new RegExp(`^replica .+ \\(pid ${doomedPid}\\) stopped renewing its lease while the run was in progress; check the target before re-running$`));

  const [newBackend] = await waitFor('the re-delivered run\'s VACUUM to be waiting', async () => {
    const rows = await vacuumOf(rerun.runId);
    if (rows.length !== 1) throw new Error('not running yet');
    return rows;
  }, 60_000, 100);
  t.not(newBackend?.pid, deadBackend?.pid);
  t.same(await server.query('select pid from pg_stat_activity where pid = $1', [deadBackend?.pid]), [],
    'the dead run\'s VACUUM backend was gone before the next run of it started');
  const cutOff = peers.flatMap((peer) => peer.logLines()).filter((line) => line.msg === 'terminated the backends of a run whose owner is gone before taking its lock');
  t.same(cutOff.map((line) => [line.deadRunId, line.status, line.pids]), [[first.runId, 'interrupted', [deadBackend?.pid]]], 'the peer that took the lock cut the dead run\'s backend off');
  const marked = peers.flatMap((peer) => peer.logLines()).filter((line) => line.runId === first.runId && line.level === 40);
  t.equal(marked.length, 1, 'one peer journalled it interrupted');
  t.equal(marked[0]?.msg, 'the replica running this run stopped renewing its lease; journalled as interrupted');
  // A figure for docs/replicas.md, not an assertion: how long after the kill a peer marked the run.
  t.comment(`kill -9 to interrupted: ${Number(marked[0]?.time) - killedAt} ms with a 3 s lease`);

  await releaseTable();
  const finished = await waitFor('the re-delivered run to finish', async () => {
    const record = await run(rerun.peer, rerun.runId);
    if (record.status === 'queued' || record.status === 'running') throw new Error(`still ${record.status}`);
    return record;
  }, 60_000, 100);
  t.equal(finished.status, 'success', finished.error ?? '');
  t.equal((await tableStats(server, 'app', 'orders')).vacuumCount, 1, 'the table was vacuumed once');
  t.same([(await deliver(t, peerB, payload)).status, (await deliver(t, peerC, payload)).status], ['duplicate', 'duplicate'], 'later re-deliveries are duplicates');
  t.equal((await tableStats(server, 'app', 'orders')).vacuumCount, 1, 'still once');

  for (const peer of peers) t.equal(await peer.stop(), 0, peer.output());
  const errors = peers.flatMap((peer) => peer.logLines()).filter((line) => typeof line.level !== 'number' || line.level >= 50);
  t.same(errors, [], 'no errors logged');
});
