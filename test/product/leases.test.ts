import t, { type Test } from 'tap';
import { z } from 'zod';
import { runRecordSchema } from '../../src/engine/journal.js';
import { waitFor } from '../fixtures/ports.js';
import { tempDir, VACUUM_RULE, webhookPayload } from '../http/helpers.js';
import { holdTable, startTestPostgres, tableStats, tableWithDeadTuples } from '../actions/postgres-fixture.js';
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

/**
 * A PostgreSQL with a table of dead tuples that another session holds, so a VACUUM of it waits
 * (a long VACUUM) for as long as the test likes, and `count` replicas sharing one store with a
 * 3 s lease.
 */
async function lockedTableAndReplicas(t: Test, count: number) {
  const server = await startTestPostgres(t);
  await server.query('create database app');
  await server.query('create database upkeep');
  await tableWithDeadTuples(server, 'app', 'orders');
  const releaseTable = await holdTable(t, server, 'app', 'orders');
  const config = {
    targets: { postgres: [{ name: 'main', url: server.url('app') }] },
    remediation: { rules: [VACUUM_RULE], lockTimeoutSeconds: 600, cooldownSeconds: 0 },
  };
  const replicas = await Promise.all(Array.from({ length: count }, async () => {
    const { file } = await writeConfig(t, { ...config, state: { dir: await tempDir(t), postgres: { url: server.url('upkeep'), leaseSeconds: 3 } } });
    return serveInstalled(t, file);
  }));
  return { server, releaseTable, replicas };
}

t.test('kill -9 of the replica running a long VACUUM: no other run starts while its backend lives; a peer marks it interrupted within the lease; the re-delivered alert runs once', async (t) => {
  const { server, releaseTable, replicas } = await lockedTableAndReplicas(t, 3);
  const [doomed, peerB, peerC] = replicas;
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

t.test('kill -STOP of the replica running a VACUUM past its lease: a peer marks it interrupted; after kill -CONT its success is attached as late, the status stays interrupted, and its alert stays given back', async (t) => {
  const { server, releaseTable, replicas } = await lockedTableAndReplicas(t, 2);
  const [stalled, peer] = replicas;
  if (!stalled || !peer) throw new Error('two replicas');
  const stalledPid = stalled.child.pid;
  if (stalledPid === undefined) throw new Error('no pid');
  const payload = await webhookPayload();

  const first = await deliver(t, stalled, payload);
  t.equal(first.status, 'queued');
  await waitFor('the VACUUM to be waiting for the table', async () => {
    const rows = await server.query("select pid from pg_stat_activity where application_name = $1 and query like 'VACUUM%'", [`upkeep:${first.runId}`]);
    if (rows.length !== 1) throw new Error('not running yet');
  }, 60_000, 100);

  process.kill(stalledPid, 'SIGSTOP');
  t.teardown(() => { if (stalled.alive()) process.kill(stalledPid, 'SIGCONT'); });
  const interrupted = await waitFor('a peer to mark the stalled replica\'s run interrupted', async () => {
    const record = await run(peer, first.runId);
    if (record.status !== 'interrupted') throw new Error(`still ${record.status}`);
    return record;
  }, 120_000, 200);
  t.match(interrupted.reason, new RegExp(`^replica .+ \\(pid ${stalledPid}\\) stopped renewing its lease while the run was in progress; check the target before re-running$`));
  // The VACUUM's backend goes on while its client is stopped: it finishes once the table is free.
  await releaseTable();
  await waitFor('the VACUUM to finish', async () => { if ((await tableStats(server, 'app', 'orders')).vacuumCount !== 1) throw new Error('not yet'); }, 60_000, 100);
  process.kill(stalledPid, 'SIGCONT');

  const kept = await waitFor('the late outcome to be attached', async () => {
    const record = await run(peer, first.runId);
    if (!record.late) throw new Error('no late outcome yet');
    return record;
  }, 60_000, 100);
  t.same({ status: kept.status, reason: kept.reason, finishedAt: kept.finishedAt, late: kept.late?.status },
    { status: 'interrupted', reason: interrupted.reason, finishedAt: interrupted.finishedAt, late: 'success' }, 'the record stays the peer\'s, with the late success attached');
  // The replica logs it once its write is answered, and its stdout reaches this process after that.
  const warned = await stalled.logged('the stalled replica to log its late outcome', (line) => line.level === 40);
  t.match(warned, [{
    runId: first.runId, remediation: 'postgres.vacuum', status: 'success',
    msg: 'a peer journalled this run interrupted while this replica stalled past its lease; the journal keeps interrupted, with this outcome attached as late',
  }]);
  const metrics = await (await fetch(`${stalled.base}/metrics`)).text();
  t.match(metrics, /^upkeep_remediation_late_outcomes_total\{remediation="postgres\.vacuum"\} 1$/m, 'counted');

  // The peer gave the alert back when it marked the run; the late success did not claim it again.
  const again = await deliver(t, peer, payload);
  t.equal(again.status, 'queued', 'a re-delivery runs');
  const rerun = await waitFor('the re-delivered run to finish', async () => {
    const record = await run(peer, again.runId);
    if (record.status === 'queued' || record.status === 'running') throw new Error(`still ${record.status}`);
    return record;
  }, 60_000, 100);
  t.same([rerun.status, rerun.skipCode], ['skipped', 'condition'], 'and finds the table already vacuumed');
  t.equal((await tableStats(server, 'app', 'orders')).vacuumCount, 1, 'vacuumed once');

  for (const replica of [stalled, peer]) t.equal(await replica.stop(), 0, replica.output());
  const errors = [stalled, peer].flatMap((replica) => replica.logLines()).filter((line) => typeof line.level !== 'number' || line.level >= 50);
  t.same(errors, [], 'no errors logged');
});
