import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { z } from 'zod';
import { main } from '../../src/cli.js';

const run = promisify(execFile);
const committed = new URL('../../alerts/upkeep.rules.yml', import.meta.url);

/** `upkeep rules ARGS` in this process: its exit code, stdout and stderr. */
async function rules(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['rules', ...args], { out: (line) => out.push(line), err: (line) => err.push(line), env: {} });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

async function promtoolCheckRules(file: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run('promtool', ['check', 'rules', file]);
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const failed = z.object({ code: z.number(), stdout: z.string(), stderr: z.string() }).parse(err);
    return { code: failed.code, output: failed.stdout + failed.stderr };
  }
}

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'upkeep-rules-cmd-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

t.test('--out writes upkeep.rules.yml; the shipped defaults give the committed file', async (t) => {
  const dir = await tempDir(t);
  const out = join(dir, 'nested', 'rules');
  const result = await rules(['--out', out]);
  t.equal(result.code, 0, result.err);
  t.equal(result.err, '');
  t.match(result.out, new RegExp(`^wrote ${out}/upkeep\\.rules\\.yml \\(\\d+ alerts\\)$`));
  t.ok(await readFile(join(out, 'upkeep.rules.yml'), 'utf8') === await readFile(committed, 'utf8'), 'identical to alerts/upkeep.rules.yml');
  t.same(await readdir(out), ['upkeep.rules.yml'], 'no partial file left behind');
  const check = await promtoolCheckRules(join(out, 'upkeep.rules.yml'));
  t.equal(check.code, 0, check.output);
});

t.test('a custom thresholds file: its selector, runbook base URL and thresholds, and promtool accepts the result', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'thresholds.yml');
  await writeFile(file, [
    'selector: \'job=~"upkeep|upkeep-staging", env="prod"\'',
    'runbookBaseUrl: https://wiki.example.com/runbooks',
    'backups: { maxAge: 8 days }',
    'postgres: { notVacuumedFor: 15 days, deadTuples: 50000 }',
    'docker: { reclaimable: 20 GiB }',
    'for: { BackupTooOld: 2h, UpkeepRemediationFailing: 5m }',
    '',
  ].join('\n'));
  const result = await rules(['--thresholds', file, '--out', dir]);
  t.equal(result.code, 0, result.err);
  const text = await readFile(join(dir, 'upkeep.rules.yml'), 'utf8');
  t.not(text, await readFile(committed, 'utf8'));
  t.notMatch(text, /\{job="upkeep"[,}]/, 'the default selector is gone');
  t.match(text, 'upkeep_backup_last_success_timestamp_seconds{job=~"upkeep|upkeep-staging",env="prod"} > 8 * 86400');
  t.match(text, 'absent(up{job=~"upkeep|upkeep-staging",env="prod"})');
  t.match(text, 'summary: No valid backup is newer than 8 days.');
  t.match(text, 'upkeep_postgres_dead_tuples{job=~"upkeep|upkeep-staging",env="prod"} offset 15d');
  t.match(text, 'upkeep_postgres_dead_tuples{job=~"upkeep|upkeep-staging",env="prod"} > 50000');
  t.match(text, '> 20 * 1024 * 1024 * 1024');
  t.match(text, 'runbook_url: https://wiki.example.com/runbooks/BackupTooOld.md');
  t.notMatch(text, 'github.com/upkeep-dev');
  t.match(text, /alert: BackupTooOld\n(?:.*\n)*?\s+for: 2h\n/, 'for: overridden');
  t.match(text, /alert: UpkeepRemediationFailing\n(?:.*\n)*?\s+for: 5m\n/, 'for: added to a rule that has none');
  const check = await promtoolCheckRules(join(dir, 'upkeep.rules.yml'));
  t.equal(check.code, 0, check.output);
  t.match(check.output, 'SUCCESS');
});

t.test('without --out the rules go to stdout', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'thresholds.yml');
  await writeFile(file, 'disk: { usedRatio: 0.9 }\n');
  const result = await rules(['--thresholds', file]);
  t.equal(result.code, 0);
  t.match(result.out, /^# Alert rules for upkeep's metrics/);
  t.match(result.out, 'upkeep_disk_used_ratio{job="upkeep"} > 0.9');
  t.match(result.out, 'summary: A filesystem is more than 90% full.');
});

t.test('a bad thresholds file names each error, writes nothing and exits 1', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'thresholds.yml');
  await writeFile(file, 'backups: { maxAge: 26 }\ndisk: { usedRatio: 80, typo: 1 }\n\n');
  const out = join(dir, 'out');
  const bad = await rules(['--thresholds', file, '--out', out]);
  t.equal(bad.code, 1);
  t.equal(bad.out, '');
  t.equal(bad.err, [
    `${file}: 3 error(s) in the thresholds file; no rules written`,
    '  disk.usedRatio: must be below 1',
    '  disk.typo: unknown key',
    '  backups.maxAge: must be a duration such as "26h", "10m" or "35 days"',
  ].join('\n'));
  t.notOk(existsSync(out), 'no output directory was made');

  await writeFile(file, 'for: { BackupTooOl: 1h }\n');
  t.equal((await rules(['--thresholds', file])).err, `${file}: 1 error(s) in the thresholds file; no rules written\n  for.BackupTooOl: names no alert (did you mean "BackupTooOld"?)`);

  const missing = await rules(['--thresholds', join(dir, 'nope.yml')]);
  t.equal(missing.code, 1);
  t.match(missing.err, `${join(dir, 'nope.yml')}: 1 error(s) in the thresholds file; no rules written\n  (file): cannot read`);
});

t.test('an --out that cannot be written is an error naming it', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'a-file'), 'x');
  const result = await rules(['--out', join(dir, 'a-file')]);
  t.equal(result.code, 1);
  t.equal(result.out, '');
  t.match(result.err, new RegExp(`^--out ${join(dir, 'a-file')}: cannot write upkeep\\.rules\\.yml \\(.+\\)$`));
});

t.test('arguments other than the flags are refused; help lists every flag', async (t) => {
  const extra = await rules(['alerts']);
  t.equal(extra.code, 2);
  t.match(extra.err, /^upkeep rules takes no arguments, got "alerts"\nusage:/);
  const help: string[] = [];
  t.equal(await main(['help', 'rules'], { out: (line) => help.push(line), err: (line) => t.fail(line), env: {} }), 0);
  for (const flag of ['--thresholds FILE', '--out DIR', '--log-level LEVEL']) t.match(help.join('\n'), flag);
  const usage: string[] = [];
  await main(['--help'], { out: (line) => usage.push(line), err: (line) => t.fail(line), env: {} });
  t.match(usage.join('\n'), 'upkeep rules [--thresholds FILE] [--out DIR]');
});
