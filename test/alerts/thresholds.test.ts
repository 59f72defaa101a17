import { readFile } from 'node:fs/promises';
import t from 'tap';
import { parseThresholds } from '../../src/alerts/load.js';
import { ALERT_NAMES } from '../../src/alerts/rules.js';
import { DEFAULT_THRESHOLDS } from '../../src/alerts/thresholds.js';

const example = new URL('../../examples/thresholds.yml', import.meta.url);
const doc = new URL('../../docs/alerts.md', import.meta.url);

function errors(text: string): string[] {
  const result = parseThresholds(text);
  return result.ok ? [] : result.errors.map((error) => `${error.path}: ${error.message}`);
}

t.test('the shipped defaults', async (t) => {
  t.equal(DEFAULT_THRESHOLDS.selector, 'job="upkeep"');
  t.equal(DEFAULT_THRESHOLDS.runbookBaseUrl, 'https://github.com/upkeep-dev/upkeep/blob/main/docs/runbooks/');
  t.equal(DEFAULT_THRESHOLDS.backups.maxAge, 26 * 3600);
  t.equal(DEFAULT_THRESHOLDS.postgres.slotRetainedWal, 10 * 1024 ** 3);
  t.equal(DEFAULT_THRESHOLDS.upkeep.cacheRefresh.sizes, 300);
  t.equal(DEFAULT_THRESHOLDS.upkeep.cacheRefresh.xid_ages, 60);
  t.same(DEFAULT_THRESHOLDS.for, {});
  t.same(parseThresholds(''), { ok: true, thresholds: DEFAULT_THRESHOLDS }, 'an empty file is the defaults');
});

t.test('examples/thresholds.yml writes out every key with its default', async (t) => {
  const text = await readFile(example, 'utf8');
  t.same(parseThresholds(text), { ok: true, thresholds: DEFAULT_THRESHOLDS });
  const keys = (value: object, prefix = ''): string[] => Object.entries(value).flatMap(([key, child]) =>
    child !== null && typeof child === 'object' && key !== 'for' ? keys(child, `${prefix}${key}.`) : [`${prefix}${key}`]);
  for (const key of keys(DEFAULT_THRESHOLDS)) {
    const leaf = key.split('.').pop() ?? '';
    t.match(text, new RegExp(`^\\s*${leaf}:`, 'm'), `the example names ${key}`);
  }
});

t.test('values are read the way people write them', async (t) => {
  const result = parseThresholds([
    "selector: ' job =~ \"upkeep-.*\" , env!=\"dev, staging\"'",
    'runbookBaseUrl: https://wiki.example.com/runbooks',
    'backups: { maxAge: 8 days }',
    'postgres: { slotRetainedWal: "512 MiB", longTransaction: 90m }',
    'docker: { reclaimable: 5000000000 }',
    'for: { BackupTooOld: 30s, UpkeepRemediationFailing: 0s }',
  ].join('\n'));
  t.ok(result.ok);
  if (!result.ok) return;
  const { thresholds } = result;
  t.equal(thresholds.selector, 'job=~"upkeep-.*",env!="dev, staging"', 'matchers normalised, a comma inside a value kept');
  t.equal(thresholds.runbookBaseUrl, 'https://wiki.example.com/runbooks/', 'a base URL gains its trailing slash');
  t.equal(thresholds.backups.maxAge, 8 * 86400);
  t.equal(thresholds.backups.verifyMaxAge, 35 * 86400, 'what the file leaves out keeps its default');
  t.equal(thresholds.postgres.slotRetainedWal, 512 * 1024 ** 2);
  t.equal(thresholds.postgres.longTransaction, 5400);
  t.equal(thresholds.docker.reclaimable, 5e9);
  t.same(thresholds.for, { BackupTooOld: 30, UpkeepRemediationFailing: 0 });
});

t.test('unknown keys and wrong values are errors that name their path', async (t) => {
  t.same(errors('postgres: { deadTuple: 5 }\nbogus: 1\n'), ['postgres.deadTuple: unknown key', 'bogus: unknown key']);
  t.same(errors('backups: { maxAge: 26 }\n'), ['backups.maxAge: must be a duration such as "26h", "10m" or "35 days"']);
  t.same(errors('backups: { maxAge: "0s" }\n'), ['backups.maxAge: must be longer than 0s']);
  t.same(errors('disk: { usedRatio: 80 }\n'), ['disk.usedRatio: must be below 1']);
  t.same(errors('disk: { usedRatio: "80%" }\n'), ['disk.usedRatio: must be a number such as 0.8 (for 80%)']);
  t.same(errors('redis: { fragmentationRatio: high }\n'), ['redis.fragmentationRatio: must be a number such as 1.5']);
  t.same(errors('postgres: { horizonXminAge: 1.5 }\n'), ['postgres.horizonXminAge: must be a whole number']);
  t.same(errors('docker: { containerLogSize: "1 GiBs" }\n'), ['docker.containerLogSize: must be a size such as "10 GiB" or "512 MiB", or a number of bytes']);
  t.same(errors('disk: [1]\n'), ['disk: Invalid input: expected object, received array']);
  t.same(errors('selector: job=upkeep\n'), ['selector: must be PromQL label matchers such as job="upkeep" (label, =, !=, =~ or !~, a double-quoted value; several separated by commas)']);
  t.same(errors('selector: ""\n').length, 1, 'an empty selector would match every job');
  t.same(errors('runbookBaseUrl: ftp://x/\n'), ['runbookBaseUrl: must be an http:// or https:// URL']);
  t.same(errors('runbookBaseUrl: "https://x/{{bad/"\n'), ['runbookBaseUrl: must not hold {{ or }} (Prometheus reads annotations as templates)'], 'promtool refused every rule rendered from it');
  t.same(errors('for: { BackupTooOl: 1m, "bad name": 1m, DiskUsageHigh: 1m }\n'), [
    'for.BackupTooOl: names no alert (did you mean "BackupTooOld"?)',
    'for["bad name"]: names no alert',
  ]);
  t.same(errors('for: { DiskUsageHigh: soon }\n'), ['for.DiskUsageHigh: must be a duration such as "26h", "10m" or "35 days"']);
  t.same(errors('disk: { usedRatio: 80 }\nfor: { NoSuchAlert: 1h, DiskUsageHigh: soon }\n'), [
    'disk.usedRatio: must be below 1',
    'for.DiskUsageHigh: must be a duration such as "26h", "10m" or "35 days"',
    'for.NoSuchAlert: names no alert',
  ], 'a wrong name is listed with the wrong values, not after they are fixed');
  t.same(errors('for: [BackupTooOld]\n'), ['for: Invalid input: expected record, received array'], 'for: not a map: no names to check');
  t.same(errors('disk: { usedRatio: [oops\n'), ['(root): not valid YAML at line 2, column 1: bad indentation'], 'YAML errors as the config reports them');
});

t.test('every alert can be named in for:', async (t) => {
  t.ok(ALERT_NAMES.length >= 41);
  const all = Object.fromEntries(ALERT_NAMES.map((name) => [name, '1m']));
  const result = parseThresholds(`for: ${JSON.stringify(all)}\n`);
  t.ok(result.ok, 'each one is known');
});

t.test('docs/alerts.md describes every key and lists every alert with its runbook page', async (t) => {
  const text = await readFile(doc, 'utf8');
  const keys = (value: object, prefix = ''): string[] => Object.entries(value).flatMap(([key, child]) =>
    child !== null && typeof child === 'object' && key !== 'for' ? keys(child, `${prefix}${key}.`) : [`${prefix}${key}`]);
  for (const key of keys(DEFAULT_THRESHOLDS)) t.match(text, `\n| \`${key}\` |`, `a row for ${key}`);
  for (const name of ALERT_NAMES) t.match(text, `\n| [${name}](runbooks/${name}.md) |`, `a row for ${name}`);
});
