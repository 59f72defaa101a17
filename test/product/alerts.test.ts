import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { installedPackage, serveInstalled, upkeep, writeConfig } from './installed.js';

const run = promisify(execFile);
const committed = await readFile(new URL('../../alerts/upkeep.rules.yml', import.meta.url), 'utf8');

t.test('the installed `upkeep rules` renders the shipped rules, and the shipped example thresholds give the same', async (t) => {
  const shipped = join(await installedPackage(), 'node_modules', 'upkeep');
  const defaults = await upkeep(['rules']);
  t.equal(defaults.code, 0, defaults.stderr);
  t.equal(defaults.stderr, '');
  t.ok(defaults.stdout === committed, 'stdout is alerts/upkeep.rules.yml, byte for byte');
  t.ok(await readFile(join(shipped, 'alerts', 'upkeep.rules.yml'), 'utf8') === committed, 'the package ships that file');
  const example = await upkeep(['rules', '--thresholds', join(shipped, 'examples', 'thresholds.yml')]);
  t.equal(example.code, 0, example.stderr);
  t.ok(example.stdout === committed, 'examples/thresholds.yml spells out the defaults');
  const help = await upkeep(['help', 'rules']);
  t.equal(help.code, 0);
  for (const flag of ['--thresholds FILE', '--out DIR', '--log-level LEVEL']) t.match(help.stdout, flag);
});

t.test('a custom thresholds file: --out writes rules promtool accepts; a bad one names its errors and writes nothing', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'upkeep-product-rules-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'thresholds.yml');
  await writeFile(file, 'selector: \'job="maint"\'\nbackups: { maxAge: 8 days }\nrunbookBaseUrl: https://wiki.example.com/ops\n');
  const out = join(dir, 'rules');
  const written = await upkeep(['rules', '--thresholds', file, '--out', out]);
  t.equal(written.code, 0, written.stderr);
  t.match(written.stdout, new RegExp(`^wrote ${out}/upkeep\\.rules\\.yml \\(\\d+ alerts\\)\\n$`));
  const text = await readFile(join(out, 'upkeep.rules.yml'), 'utf8');
  t.match(text, 'time() - upkeep_backup_last_success_timestamp_seconds{job="maint"} > 8 * 86400');
  t.match(text, 'runbook_url: https://wiki.example.com/ops/BackupTooOld.md');
  const { stdout } = await run('promtool', ['check', 'rules', join(out, 'upkeep.rules.yml')]);
  t.match(stdout, /SUCCESS: \d+ rules found/);

  await writeFile(file, 'backups: { maxAge: yesterday }\nbogus: 1\n');
  const elsewhere = join(dir, 'not-written');
  const bad = await upkeep(['rules', '--thresholds', file, '--out', elsewhere]);
  t.equal(bad.code, 1);
  t.equal(bad.stdout, '');
  t.equal(bad.stderr, [
    `${file}: 2 error(s) in the thresholds file; no rules written`,
    '  backups.maxAge: must be a duration such as "26h", "10m" or "35 days"',
    '  bogus: unknown key',
    '',
  ].join('\n'));
  t.notOk(existsSync(elsewhere));
});

t.test('the installed serve reports a missing backup or log directory as present 0, its collector up', async (t) => {
  const { dir, file } = await writeConfig(t, {
    targets: {
      backups: [{ name: 'refnet', dir: '/nonexistent/upkeep-backups', pattern: 'refnet_*.sql.gz' }],
      logs: [{ name: 'refnet', dir: '/nonexistent/upkeep-logs' }],
    },
  });
  await mkdir(join(dir, 'state'), { recursive: true });
  const served = await serveInstalled(t, file);
  const body = await (await fetch(`${served.base}/metrics`)).text();
  for (const line of [
    'upkeep_backup_dir_present{backup="refnet"} 0',
    'upkeep_backup_files{backup="refnet"} 0',
    'upkeep_log_dir_present{name="refnet"} 0',
    'upkeep_collector_up{collector="backups",target="refnet"} 1',
    'upkeep_collector_up{collector="logs",target="refnet"} 1',
  ]) t.match(body, `\n${line}\n`, line);
  t.notMatch(body, 'upkeep_backup_last_success_timestamp_seconds{', 'no timestamp to age');
  t.equal(await served.stop(), 0);
});
