import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import t from 'tap';
import { parseThresholds } from '../../src/alerts/load.js';
import { renderRules } from '../../src/alerts/render.js';
import { ruleGroups } from '../../src/alerts/rules.js';
import { parseConfig } from '../../src/config/load.js';
import { waitFor } from '../../src/demo/servers/ports.js';
import { startPrometheus, type ActiveAlert } from '../../src/demo/servers/prometheus.js';
import { buildApp } from '../../src/server.js';
import { capturedLogger } from '../http/helpers.js';

/**
 * A real Prometheus scraping a real upkeep and evaluating the shipped rules (rendered by
 * `upkeep rules` with only `for:` shortened to 5s): removing a backup directory keeps
 * BackupTooOld firing, and fires it for a backup that was fresh, instead of letting the backup
 * series vanish and the alert resolve. The rule as it was before (age of the newest backup only)
 * runs beside it and does resolve, which is what the shipped rule is tested against.
 */
const HOLD = 5;
const BEFORE = `groups:
  - name: before
    rules:
      - alert: BackupTooOldBefore
        expr: time() - upkeep_backup_last_success_timestamp_seconds{job="upkeep"} > 26 * 3600
        for: ${HOLD}s
`;

t.test('removing a backup directory fires BackupTooOld and BackupMissing instead of resolving', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'upkeep-backup-dir-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const now = Date.now() / 1000;
  const dirs = { stale: join(root, 'stale'), fresh: join(root, 'fresh') };
  for (const [name, dir] of Object.entries(dirs)) {
    await mkdir(dir);
    const file = join(dir, `${name}_20260101_020000.sql.gz`);
    await writeFile(file, gzipSync('CREATE TABLE t ();\n'));
    const mtime = name === 'stale' ? now - 30 * 3600 : now - 60;
    await utimes(file, mtime, mtime);
  }

  const parsed = parseConfig(JSON.stringify({
    state: { dir: join(root, 'state') },
    targets: { backups: Object.entries(dirs).map(([name, dir]) => ({ name, dir, pattern: '*.sql.gz' })) },
  }), {});
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  const { log, text } = capturedLogger('info');
  const app = await buildApp({ config: parsed.config, log });
  await app.fastify.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.fastify.close());
  const address = app.fastify.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');

  const thresholds = parseThresholds(`for: { BackupTooOld: ${HOLD}s, BackupMissing: ${HOLD}s }\n`);
  if (!thresholds.ok) throw new Error(JSON.stringify(thresholds.errors));
  await writeFile(join(root, 'upkeep.rules.yml'), renderRules(ruleGroups(thresholds.thresholds), thresholds.thresholds));
  await writeFile(join(root, 'before.rules.yml'), BEFORE);
  const prometheus = await startPrometheus({
    scrapeTarget: `127.0.0.1:${address.port}`,
    ruleFiles: [join(root, 'upkeep.rules.yml'), join(root, 'before.rules.yml')],
    intervalSeconds: 1,
  });
  t.teardown(() => prometheus.destroy());

  const active = async (alertname: string, backup: string): Promise<ActiveAlert | undefined> =>
    (await prometheus.alerts()).find((alert) => alert.labels.alertname === alertname && alert.labels.backup === backup);
  const firing = (alertname: string, backup: string) => waitFor(`${alertname} for ${backup} to fire`, async () => {
    const alert = await active(alertname, backup);
    if (alert?.state !== 'firing') throw new Error(alert ? alert.state : 'inactive');
    return alert;
  }, 60_000, 250);

  // A backup 30 hours old: both the shipped rule and the one before it fire.
  const stale = await firing('BackupTooOld', 'stale');
  await firing('BackupTooOldBefore', 'stale');
  t.equal(await active('BackupTooOld', 'fresh'), undefined, 'a backup a minute old does not fire');
  t.equal(await active('BackupMissing', 'stale'), undefined, 'a directory with a valid dump is not "missing"');

  // Once the firing alert's activeAt changes or it leaves the list, it resolved: that must not happen.
  const broken: string[] = [];
  const staleStaysFiring = async () => {
    const alert = await active('BackupTooOld', 'stale');
    if (alert?.state !== 'firing' || alert.activeAt !== stale.activeAt) broken.push(JSON.stringify(alert ?? 'resolved'));
  };

  for (const dir of Object.values(dirs)) await rm(dir, { recursive: true });
  await waitFor('Prometheus to see both directories missing', async () => {
    await staleStaysFiring();
    const missing = await prometheus.query('upkeep_backup_dir_present == 0');
    if (missing.length !== 2) throw new Error(`${missing.length} missing`);
  }, 30_000, 250);
  t.same(await prometheus.query('upkeep_backup_last_success_timestamp_seconds'), [], 'the timestamps are gone');

  await waitFor('the rule as it was before to resolve', async () => {
    await staleStaysFiring();
    if (await active('BackupTooOldBefore', 'stale')) throw new Error('still active');
  }, 30_000, 250);

  // The fresh backup's alert goes pending and fires after its `for`; both say "missing".
  for (const [alertname, backup] of [['BackupTooOld', 'fresh'], ['BackupMissing', 'stale'], ['BackupMissing', 'fresh']] as const) {
    await waitFor(`${alertname} for ${backup} to fire`, async () => {
      await staleStaysFiring();
      const alert = await active(alertname, backup);
      if (alert?.state !== 'firing') throw new Error(alert ? alert.state : 'inactive');
    }, 60_000, 250);
  }
  await staleStaysFiring();
  t.same(broken, [], 'BackupTooOld for the stale backup kept firing, with the same activeAt, throughout');
  t.equal(await active('BackupTooOldBefore', 'fresh'), undefined, 'the rule before never fired for the fresh backup');

  // What the alerts say: no backup can be seen (the value is +Inf), the directory is missing (0).
  const tooOld = await active('BackupTooOld', 'fresh');
  t.equal(tooOld?.value, '+Inf');
  t.equal(tooOld?.annotations.description, 'No valid backup of fresh can be seen: its directory is missing or holds no complete dump; the scheduled backup did not run, did not finish, or its files were removed.');
  const missing = await active('BackupMissing', 'stale');
  t.equal(Number(missing?.value), 0);
  t.equal(missing?.annotations.description, `The backup directory of stale is missing on 127.0.0.1:${address.port}; there is nothing to restore from.`);
  t.same((await prometheus.query('upkeep_backup_files')).map((sample) => sample.value[1]), ['0', '0'], 'no files in either');

  // A missing directory is a reading, not a failure: nothing but the listen line is logged.
  const lines = text().split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as { level: number; msg: string });
  t.same(lines.map(({ level, msg }) => ({ level, msg })), [{ level: 30, msg: `Server listening at http://127.0.0.1:${address.port}` }]);
});
