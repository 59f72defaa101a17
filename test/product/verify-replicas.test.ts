import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { z } from 'zod';
import { runRecordSchema } from '../../src/engine/journal.js';
import { startTestPostgres } from '../actions/postgres-fixture.js';
import { waitFor } from '../fixtures/ports.js';
import { tempDir } from '../http/helpers.js';
import { serveInstalled, writeConfig, type Served } from './installed.js';

const TOKEN = 'tok-verify-replicas-61c3';
const BACKUP_TARGET = { collector: 'backups', target: 'refnet' };
const readyz = z.object({ targets: z.array(z.object({ collector: z.string(), target: z.string() })) });
const SERIES = /^upkeep_backup_last_verify_success_timestamp_seconds\{backup="refnet"\} (\S+)$/gm;

async function collectsBackup(replica: Served): Promise<boolean> {
  const reply = readyz.parse(await (await fetch(`${replica.base}/readyz`)).json());
  return reply.targets.some((target) => target.collector === BACKUP_TARGET.collector && target.target === BACKUP_TARGET.target);
}

/** The verify timestamps the replica exposes for refnet (none, or one). */
async function verifyTimes(replica: Served): Promise<number[]> {
  const text = await (await fetch(`${replica.base}/metrics`)).text();
  return [...text.matchAll(SERIES)].map((match) => Number(match[1]));
}

async function runRemediation(replica: Served, name: string): Promise<z.infer<typeof runRecordSchema>> {
  const response = await fetch(`${replica.base}/remediations/${name}?wait=true`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ params: { backup: 'refnet' } }),
  });
  const run = runRecordSchema.parse(await response.json());
  if (response.status !== 200 || run.status !== 'success') throw new Error(`${name}: ${response.status} ${run.status} ${run.error ?? run.reason ?? ''}`);
  // The journal's record, as any replica reads it.
  return runRecordSchema.parse(await (await fetch(`${replica.base}/runs/${run.id}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json());
}

t.test('two installed replicas on one state store: a verify run on one is exported by the one collecting the backup, and after a restart on an empty state.dir', async (t) => {
  const postgres = await startTestPostgres(t);
  await postgres.query('create database refnet');
  await postgres.query('create database upkeep');
  await postgres.query('create table orders (id int primary key, note text)', [], 'refnet');
  await postgres.query('insert into orders select g, md5(g::text) from generate_series(1, 500) g', [], 'refnet');
  const backups = await tempDir(t, 'upkeep-verify-backups-');
  const settings = async () => {
    const stateDir = await tempDir(t);
    const { file } = await writeConfig(t, {
      server: { authToken: TOKEN },
      targets: {
        postgres: [{ name: 'main', url: postgres.url('postgres') }],
        backups: [{ name: 'refnet', dir: backups, pattern: 'refnet_*.sql.gz', source: { target: 'main', database: 'refnet' } }],
      },
      collectors: { disabled: ['docker', 'disks', 'postgres'] },
      // Each replica its own state.dir (as the Kubernetes overlay's emptyDir), one shared store.
      state: { dir: stateDir, postgres: { url: postgres.url('upkeep'), memberHeartbeatSeconds: 1, memberLeaseSeconds: 3 } },
    });
    return { file, stateDir };
  };
  const configs = await Promise.all([settings(), settings()]);
  const replicas = await Promise.all(configs.map(({ file }) => serveInstalled(t, file)));

  const owners = await waitFor('one replica to collect the backup', async () => {
    const collecting = await Promise.all(replicas.map((replica) => collectsBackup(replica)));
    if (collecting.filter(Boolean).length !== 1) throw new Error(`collecting: ${collecting.join(', ')}`);
    return collecting;
  }, 60_000, 200);
  const collector = replicas[owners.indexOf(true)]!;
  const runner = replicas[owners.indexOf(false)]!;
  t.same(await verifyTimes(collector), [], 'never verified: no series (BackupNeverVerified would fire)');

  // The replica that does not collect the backup runs the dump and the verify.
  await runRemediation(runner, 'backup.pg_dump');
  const verify = await runRemediation(runner, 'backup.verify');
  const verifiedAt = Date.parse(verify.finishedAt ?? '') / 1000;
  t.ok(verifiedAt > 0, `the verify finished at ${verify.finishedAt}`);

  // The collector read the shared records at its first scrape, so it sees the new one at its next refresh (30 s at most).
  const exported = await waitFor('the collecting replica to export the verify', async () => {
    const times = await verifyTimes(collector);
    if (times.length === 0) throw new Error('not exported yet');
    return times;
  }, 60_000, 1_000);
  t.same(exported, [verifiedAt], 'the verify\'s finish time, exactly, from the shared state');
  t.same(await verifyTimes(runner), [], 'the runner does not collect the backup: the series is served once');
  const stateDirOf = (replica: Served) => configs[replicas.indexOf(replica)]!.stateDir;
  t.same(await readdir(join(stateDirOf(runner), 'verify')), ['refnet.json'], 'the runner\'s own ledger has it');
  t.same((await readdir(stateDirOf(collector))).includes('verify'), false, 'the collector\'s state.dir does not');

  for (const replica of replicas) t.equal(await replica.stop(), 0, 'exits 0 on SIGTERM', { output: replica.output() });
  for (const replica of replicas) {
    t.same(replica.logLines().filter((line) => typeof line.level !== 'number' || line.level >= 40), [], 'no warning or error logged');
  }

  // A replacement pod: an empty state.dir, the same shared store. Alone, it collects everything.
  const fresh = await settings();
  const replacement = await serveInstalled(t, fresh.file);
  const again = await waitFor('the replacement to export the verify', async () => {
    const times = await verifyTimes(replacement);
    if (times.length === 0) throw new Error('not exported yet');
    return times;
  }, 30_000, 200);
  t.same(again, [verifiedAt], 'the same timestamp after the restart');
  t.same((await readdir(fresh.stateDir)).includes('verify'), false, 'from the shared state alone');
  t.equal(await replacement.stop(), 0);
});
