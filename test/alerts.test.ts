import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { z } from 'zod';
import { renderRules } from '../src/alerts/render.js';
import { ruleGroups } from '../src/alerts/rules.js';
import { DEFAULT_THRESHOLDS } from '../src/alerts/thresholds.js';
import { main } from '../src/cli.js';

const run = promisify(execFile);
const root = new URL('..', import.meta.url).pathname;
const rulesFile = join(root, 'alerts/upkeep.rules.yml');
const testsFile = join(root, 'alerts/upkeep.rules.test.yml');
// Cases that need days of history, evaluated every 10 minutes.
const slowTestsFile = join(root, 'alerts/upkeep.rules.slow.test.yml');
const RUNBOOK_BASE = 'https://github.com/upkeep-dev/upkeep/blob/main/docs/runbooks/';

const alertRule = z.strictObject({
  alert: z.string(),
  expr: z.string(),
  for: z.string().optional(),
  labels: z.record(z.string(), z.string()),
  annotations: z.record(z.string(), z.string()),
});
const rulesSchema = z.object({ groups: z.array(z.object({ name: z.string(), rules: z.array(alertRule) })) });
const testsSchema = z.object({
  tests: z.array(z.object({
    name: z.string(),
    alert_rule_test: z.array(z.object({
      alertname: z.string(),
      exp_alerts: z.array(z.object({ exp_labels: z.record(z.string(), z.string()), exp_annotations: z.record(z.string(), z.string()) })),
    })),
  })),
});

async function promtool(...args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run('promtool', args);
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const failed = z.object({ code: z.number(), stdout: z.string(), stderr: z.string() }).parse(err);
    return { code: failed.code, output: failed.stdout + failed.stderr };
  }
}

const rules = rulesSchema.parse(parseYaml(await readFile(rulesFile, 'utf8'))).groups.flatMap((group) => group.rules);
const ruleTests = (await Promise.all([testsFile, slowTestsFile].map(async (file) => testsSchema.parse(parseYaml(await readFile(file, 'utf8')))))).flatMap((tests) => tests.tests.flatMap((test) => test.alert_rule_test));

t.test('the committed rules are what `upkeep rules` prints for the shipped defaults, byte for byte', async (t) => {
  const committed = await readFile(rulesFile, 'utf8');
  const out: string[] = [];
  const code = await main(['rules'], { out: (line) => out.push(line), err: (line) => t.fail(line), env: {} });
  t.equal(code, 0);
  t.ok(`${out.join('\n')}\n` === committed, 'stdout equals alerts/upkeep.rules.yml (regenerate it with `upkeep rules --out alerts`)');
  t.ok(renderRules(ruleGroups(DEFAULT_THRESHOLDS), DEFAULT_THRESHOLDS) === committed, 'and so does the renderer');
});

t.test('promtool check rules accepts the rule file', async (t) => {
  const result = await promtool('check', 'rules', rulesFile);
  t.equal(result.code, 0, result.output);
  t.match(result.output, `SUCCESS: ${rules.length} rules found`);
});

t.test('promtool test rules passes every firing and not-firing case', async (t) => {
  const result = await promtool('test', 'rules', testsFile, slowTestsFile);
  t.equal(result.code, 0, result.output);
  t.equal(result.output.match(/SUCCESS/g)?.length, 2, result.output);
});

t.test('the rule tests bite: dropping the dead-tuple ratio makes them fail', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'upkeep-rules-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const text = await readFile(rulesFile, 'utf8');
  const ratio = 'upkeep_postgres_dead_tuples{job="upkeep"} / (upkeep_postgres_dead_tuples{job="upkeep"} + upkeep_postgres_live_tuples{job="upkeep"}) > 0.2';
  t.ok(text.includes(ratio), 'the ratio arm is where this test expects it');
  await writeFile(join(dir, 'upkeep.rules.yml'), text.replace(ratio, 'upkeep_postgres_dead_tuples{job="upkeep"} >= 0'));
  // Only the dead-tuple cases: the whole file takes promtool most of a minute, and the others do
  // not read the ratio.
  const tests = z.looseObject({ tests: z.array(z.looseObject({ name: z.string() })) }).parse(parseYaml(await readFile(testsFile, 'utf8')));
  const deadTuples = tests.tests.filter((test) => test.name.startsWith('PostgresDeadTuplesHigh'));
  t.equal(deadTuples.length, 1, 'the dead-tuple cases are one group');
  await writeFile(join(dir, 'upkeep.rules.test.yml'), stringifyYaml({ ...tests, tests: deadTuples }));
  const result = await promtool('test', 'rules', join(dir, 'upkeep.rules.test.yml'));
  t.not(result.code, 0);
  t.match(result.output, /PostgresDeadTuplesHigh/);
  t.match(result.output, /table="papers"/, 'the large table with a low ratio now fires, and the test catches it');
});

t.test('every alert SPEC and the runbooks name is defined', async (t) => {
  const required = [
    'DiskUsageHigh', 'DiskWillFillIn4Hours', 'BackupTooOld', 'BackupMissing', 'BackupVerifyTooOld',
    'PostgresDeadTuplesHigh', 'PostgresTableNotVacuumed', 'RedisFragmentationHigh', 'RedisBgsaveFailed',
    'RedisNoRecentSave', 'RedisKeyPatternBacklog', 'DockerContainerLogLarge', 'DockerReclaimableSpaceHigh',
    'ServiceDown', 'UpkeepTargetDown', 'UpkeepCollectorDown', 'UpkeepRemediationFailing', 'UpkeepRemediationCircuitOpen',
    // The second round: wraparound, the vacuum horizon, a database down, connections, replication, Redis memory,
    // AOF and replicas, inodes, missing directories, absent targets, rejected and missed runs, stale caches.
    'PostgresWraparoundRisk', 'PostgresWraparoundImminent', 'PostgresLongTransaction', 'PostgresIdleInTransaction',
    'PostgresVacuumHorizonHeld', 'PostgresReplicationSlotInactive', 'PostgresReplicationSlotRetainingWal',
    'PostgresDatabaseDown', 'PostgresConnectionsNearLimit', 'PostgresReplicationLag', 'PostgresStandbyNotStreaming', 'RedisReplicaLinkDown',
    'RedisMemoryNearLimit', 'RedisAofWriteFailed', 'RedisAofRewriteFailed', 'DiskInodesLow', 'LogDirectoryMissing',
    'UpkeepAbsent', 'UpkeepTargetAbsent', 'UpkeepRemediationRejected', 'UpkeepScheduleMissed', 'UpkeepCacheStale',
  ];
  const names = rules.map((rule) => rule.alert);
  for (const name of required) t.ok(names.includes(name), `${name} is defined`);
  t.equal(new Set(names).size, names.length, 'alert names are unique');
});

t.test('every alert has severity, a plain summary, a templated description and its runbook page', async (t) => {
  for (const rule of rules) {
    const { alert, labels, annotations } = rule;
    t.ok(['critical', 'warning', 'info'].includes(labels.severity ?? ''), `${alert}: severity is critical, warning or info`);
    t.match(annotations.summary, /^[A-Za-z].*\.$/, `${alert}: summary is a sentence`);
    t.notMatch(annotations.summary, /\{\{/, `${alert}: summary is plain text`);
    t.match(annotations.description, /\{\{ (with |if )?\$(labels\.\w+|value)/, `${alert}: description is templated`);
    t.equal(annotations.runbook_url, `${RUNBOOK_BASE}${alert}.md`, `${alert}: runbook_url`);
    const page = join(root, 'docs/runbooks', `${alert}.md`);
    t.ok(existsSync(page), `${alert}: docs/runbooks/${alert}.md exists`);
    if (!existsSync(page)) continue;
    const text = await readFile(page, 'utf8');
    t.equal(text.split('\n')[0], `# ${alert}`, `${alert}: page title`);
    for (const section of ['What it means', 'Impact', 'Diagnose', 'What upkeep does automatically', 'What to do by hand']) {
      t.match(text, `\n## ${section}\n`, `${alert}: page has "${section}"`);
    }
  }
});

t.test('age alerts compute the age with time() - x', async (t) => {
  const age = /time\(\) - upkeep_\w+_timestamp_seconds(\{[^}]*\})?/g;
  const withoutAges = (expr: string) => expr.replace(age, 'AGE');
  const timestampComparisons = rules.filter((rule) => /_timestamp_seconds(\{[^}]*\})?\s*[<>=!]/.test(withoutAges(rule.expr)));
  t.same(timestampComparisons.map((rule) => rule.alert), [], 'no raw timestamp is compared with a threshold');
  t.ok(/_timestamp_seconds(\{[^}]*\})?\s*[<>=!]/.test(withoutAges('upkeep_x_timestamp_seconds{job="upkeep"} > 5')), 'the check sees a raw comparison behind a selector');
  const ageAlerts = rules.filter((rule) => /time\(\) - upkeep_\w+_timestamp_seconds(\{[^}]*\})? >/.test(rule.expr)).map((rule) => rule.alert);
  t.same(ageAlerts.sort(), ['BackupTooOld', 'BackupVerifyTooOld', 'PostgresTableNotVacuumed', 'RedisNoRecentSave', 'UpkeepScheduleMissed']);
});

t.test('every series a rule reads is filtered by the job selector', async (t) => {
  const unfiltered = (expr: string) => [...expr.matchAll(/\b(upkeep_[a-z0-9_]+|up)\b(\{[^}]*\})?/g)]
    .filter((match) => !(match[2] ?? '').startsWith('{job="upkeep"'))
    .map((match) => match[0]);
  t.same(unfiltered('upkeep_a{job="upkeep"} / upkeep_b{collector="x"} + up'), ['upkeep_b{collector="x"}', 'up'], 'the check sees a missing selector');
  for (const rule of rules) t.same(unfiltered(rule.expr), [], `${rule.alert}: every selector has job="upkeep"`);
});

t.test('every alert has a promtool case where it fires and one where it must not', async (t) => {
  for (const { alert, labels, annotations } of rules) {
    const cases = ruleTests.filter((test) => test.alertname === alert);
    const firing = cases.flatMap((test) => test.exp_alerts);
    t.ok(firing.length > 0, `${alert}: a firing case`);
    t.ok(cases.some((test) => test.exp_alerts.length === 0), `${alert}: a not-firing case`);
    for (const expected of firing) {
      t.equal(expected.exp_labels.severity, labels.severity, `${alert}: the firing case checks severity`);
      t.same(Object.keys(expected.exp_annotations).sort(), Object.keys(annotations).sort(), `${alert}: the firing case checks every annotation`);
      t.notMatch(expected.exp_annotations.description, /\{\{/, `${alert}: the firing case checks the rendered description`);
    }
  }
});

t.test('PostgresDeadTuplesHigh keeps the labels postgres.vacuum is templated from', async (t) => {
  const firing = ruleTests.filter((test) => test.alertname === 'PostgresDeadTuplesHigh').flatMap((test) => test.exp_alerts);
  for (const expected of firing) {
    for (const label of ['target', 'database', 'schema', 'table']) t.ok(expected.exp_labels[label], `label ${label}`);
  }
  const rule = rules.find((candidate) => candidate.alert === 'PostgresDeadTuplesHigh');
  const sel = '\\{job="upkeep"\\}';
  t.match(rule?.expr, new RegExp(`upkeep_postgres_dead_tuples${sel} > \\d+`), 'an absolute count');
  t.match(rule?.expr, new RegExp(`upkeep_postgres_dead_tuples${sel} / \\(upkeep_postgres_dead_tuples${sel} \\+ upkeep_postgres_live_tuples${sel}\\) > 0\\.\\d+`), 'and a ratio');
});

t.test('no runbook page without an alert', async (t) => {
  const { readdir } = await import('node:fs/promises');
  const pages = (await readdir(join(root, 'docs/runbooks'))).filter((file) => file.endsWith('.md'));
  const names = new Set(rules.map((rule) => `${rule.alert}.md`));
  t.same(pages.filter((page) => !names.has(page)), []);
});
