import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { z } from 'zod';
import { parseConfig } from '../src/config/load.js';
import { configSchema, type Config, type RemediationRule } from '../src/config/schema.js';
import { ACTIONS } from '../src/actions/registry.js';
import { templateParams } from '../src/triggers/rules.js';
import { cronError, cronOccurrences } from '../src/config/cron.js';
import { openWindow } from '../src/engine/windows.js';
import { freePort, waitFor } from '../src/demo/servers/ports.js';
import { startDaemon } from '../src/demo/servers/process.js';

const run = promisify(execFile);
const root = new URL('..', import.meta.url).pathname;
const example = (name: string) => join(root, 'examples', name);
const ENV = { UPKEEP_TOKEN: 'example-token', REFNET_DB_PASSWORD: 'refnet-secret', AIMS_DB_PASSWORD: 'aims-secret', REDIS_PASSWORD: 'redis-secret' };

async function exec(command: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; output: string }> {
  try {
    const { stdout, stderr } = await run(command, args, { cwd: root, env: { ...process.env, ...env } });
    return { code: 0, stdout, output: stdout + stderr };
  } catch (err) {
    const failed = z.object({ code: z.number(), stdout: z.string(), stderr: z.string() }).parse(err);
    return { code: failed.code, stdout: failed.stdout, output: failed.stdout + failed.stderr };
  }
}

async function load(name: string, env: Record<string, string> = ENV): Promise<Readonly<Config>> {
  const parsed = parseConfig(await readFile(example(name), 'utf8'), env);
  if (!parsed.ok) throw new Error(`${name}: ${parsed.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`);
  return parsed.config;
}

// The labels each shipped alert carries, from the firing cases of the promtool tests.
const ruleTests = z.object({
  tests: z.array(z.object({ alert_rule_test: z.array(z.object({ alertname: z.string(), exp_alerts: z.array(z.object({ exp_labels: z.record(z.string(), z.string()) })) })) })),
}).parse(parseYaml(await readFile(join(root, 'alerts/upkeep.rules.test.yml'), 'utf8')));
const alertLabels = new Map<string, Record<string, string>>();
for (const test of ruleTests.tests.flatMap((entry) => entry.alert_rule_test)) {
  const first = test.exp_alerts[0];
  if (first && !alertLabels.has(test.alertname)) alertLabels.set(test.alertname, { alertname: test.alertname, ...first.exp_labels });
}

// SPEC's remediations table: parameter names and risk. Registered actions are also checked against their own schema.
const SPEC_PARAMS: Record<string, readonly string[]> = {
  'postgres.vacuum': ['target', 'database', 'table', 'analyze', 'full', 'freeze'],
  'postgres.analyze': ['target', 'database', 'table'],
  'postgres.reindex': ['target', 'database', 'table', 'index', 'concurrently'],
  'postgres.retention': ['policy'],
  'postgres.terminate_idle': ['target', 'idleSeconds', 'database'],
  'redis.bgsave': ['target'],
  'redis.memory_purge': ['target'],
  'redis.expire_keys': ['target', 'pattern', 'mode', 'when', 'ttlOverSeconds', 'expireSeconds'],
  'docker.prune': ['target', 'containers', 'images', 'networks', 'buildCache', 'volumes', 'until'],
  'logs.rotate': ['name', 'compressAfterDays', 'deleteAfterDays'],
  'files.cleanup': ['name', 'olderThanHours'],
  'backup.pg_dump': ['backup'],
  'backup.verify': ['backup'],
};
type Params = Readonly<Record<string, string | number | boolean>>;
function specRisk(remediation: string, params: Params): 'safe' | 'disruptive' | 'destructive' {
  if (['postgres.retention', 'postgres.terminate_idle', 'redis.expire_keys', 'files.cleanup'].includes(remediation)) return 'destructive';
  if (remediation === 'docker.prune' && params.volumes === true) return 'destructive';
  if (remediation === 'logs.rotate') return 'disruptive';
  if (remediation === 'postgres.vacuum' && params.full === true) return 'disruptive';
  if (remediation === 'postgres.reindex' && params.concurrently === false) return 'disruptive';
  return 'safe';
}
const RANK = { safe: 0, disruptive: 1, destructive: 2 } as const;

/** Checks one remediation invocation against SPEC, the registered action (if any) and the config's own objects. */
function checkInvocation(t: Test, where: string, remediation: string, params: Params, config: Readonly<Config>, templated: boolean): void {
  const known = SPEC_PARAMS[remediation];
  t.ok(known, `${where}: ${remediation} is a SPEC remediation`);
  if (!known) return;
  t.same(Object.keys(params).filter((key) => !known.includes(key)), [], `${where}: parameters are SPEC's`);
  const action = ACTIONS.find((candidate) => candidate.name === remediation);
  if (action) {
    const parsed = action.params.safeParse(params);
    t.ok(parsed.success, `${where}: ${remediation}'s own schema accepts ${JSON.stringify(params)}`);
  }
  if (templated) return; // names that came from labels are checked against the live catalog at run time
  const names = (list: readonly { name: string }[]) => list.map((item) => item.name);
  const { targets } = config;
  if (remediation.startsWith('postgres.') && remediation !== 'postgres.retention') t.ok(names(targets.postgres).includes(String(params.target)), `${where}: postgres target exists`);
  if (remediation.startsWith('redis.')) t.ok(names(targets.redis).includes(String(params.target)), `${where}: redis target exists`);
  if (remediation.startsWith('docker.')) t.ok(names(targets.docker).includes(String(params.target)), `${where}: docker target exists`);
  if (remediation.startsWith('backup.')) t.ok(targets.backups.find((backup) => backup.name === params.backup)?.source, `${where}: backup exists and has a source`);
  if (remediation === 'postgres.retention') t.ok(names(config.remediation.retention).includes(String(params.policy)), `${where}: retention policy exists`);
  if (remediation === 'logs.rotate') t.ok(names(targets.logs).includes(String(params.name)), `${where}: log directory exists`);
  if (remediation === 'files.cleanup') t.ok(names(targets.files).includes(String(params.name)), `${where}: files directory exists`);
  if (typeof params.database === 'string' && remediation.startsWith('postgres.')) {
    const target = targets.postgres.find((candidate) => candidate.name === params.target);
    t.ok(target && (target.databases === 'auto' || target.databases.includes(params.database)), `${where}: database ${params.database} is monitored`);
  }
}

function checkSchedule(t: Test, config: Readonly<Config>): void {
  for (const window of config.remediation.windows) t.equal(cronError(window.cron), null, `window ${window.name}: cron parses`);
  for (const entry of config.schedule) {
    t.equal(cronError(entry.cron), null, `schedule ${entry.name}: cron parses "${entry.cron}"`);
    checkInvocation(t, `schedule ${entry.name}`, entry.remediation, entry.params, config, false);
    const risk = specRisk(entry.remediation, entry.params);
    if (risk === 'safe') continue;
    // Automatic disruptive and destructive runs need the entry to allow them and an open maintenance window.
    t.ok(RANK[entry.allowRisk] >= RANK[risk], `schedule ${entry.name}: allowRisk covers a ${risk} run`);
    for (const at of cronOccurrences(entry.cron, entry.timezone).nextRuns(3)) t.ok(openWindow(config.remediation.windows, at.getTime()), `schedule ${entry.name}: a window is open at ${at.toISOString()}`);
  }
}

function checkRules(t: Test, config: Readonly<Config>): void {
  for (const [index, rule] of config.remediation.rules.entries()) {
    const where = `rules[${index}] ${rule.match.alertname} -> ${rule.remediation}`;
    const labels = alertLabels.get(rule.match.alertname ?? '');
    t.ok(labels, `${where}: matches a shipped alert`);
    if (!labels) continue;
    const templated = Object.values(rule.params).some((value) => typeof value === 'string' && value.includes('{{'));
    checkInvocation(t, where, rule.remediation, templateParams(rule.params, labels), config, templated);
    const risk = specRisk(rule.remediation, rule.params);
    t.ok(RANK[rule.allowRisk] >= RANK[risk], `${where}: allowRisk covers a ${risk} run`);
    if (risk !== 'safe') t.ok(config.remediation.windows.length > 0, `${where}: a maintenance window exists for it`);
  }
}

const scheduled = (config: Readonly<Config>, remediation: string) => config.schedule.filter((entry) => entry.remediation === remediation);
const rulesFor = (config: Readonly<Config>, alertname: string): RemediationRule[] => config.remediation.rules.filter((rule) => rule.match.alertname === alertname);

t.test('every example config parses, and secrets come only from the environment', async (t) => {
  for (const name of ['minimal.yml', 'refnet.yml', 'ai-micro-service.yml']) t.ok(await load(name), `${name} parses`);
  const refnetWithoutSecrets = parseConfig(await readFile(example('refnet.yml'), 'utf8'), {});
  t.notOk(refnetWithoutSecrets.ok, 'refnet.yml needs its secrets');
  if (!refnetWithoutSecrets.ok) t.same(refnetWithoutSecrets.errors.map((e) => e.path).sort(), ['server.authToken', 'targets.postgres[0].url']);
  const aims = parseConfig(await readFile(example('ai-micro-service.yml'), 'utf8'), { UPKEEP_TOKEN: 'x', AIMS_DB_PASSWORD: 'y' });
  t.notOk(aims.ok, 'ai-micro-service.yml needs REDIS_PASSWORD');
  if (!aims.ok) t.same(aims.errors.map((e) => e.path), ['targets.redis[0].url']);
  const secrets = new Set(['', ...Object.values(ENV)]);
  for (const name of ['refnet.yml', 'ai-micro-service.yml']) {
    const config = await load(name);
    const urls = [...config.targets.postgres, ...config.targets.redis].map((target) => new URL(target.url));
    t.same(urls.filter((url) => !secrets.has(decodeURIComponent(url.password))).map((url) => url.password), [], `${name}: every password in a URL came from the environment`);
    t.equal(config.server.authToken, ENV.UPKEEP_TOKEN, `${name}: the token comes from the environment`);
  }
  t.match((await load('ai-micro-service.yml')).targets.redis[0]?.url, 'redis://:redis-secret@', 'REDIS_PASSWORD reaches the Redis URL');
});

t.test('upkeep check-config accepts both runbook configs', async (t) => {
  for (const name of ['refnet.yml', 'ai-micro-service.yml']) {
    const result = await exec('node', ['bin/upkeep.js', 'check-config', '--config', example(name)], ENV);
    t.equal(result.code, 0, `${name}: ${result.output}`);
  }
});

t.test('refnet.yml: schedule, rules and the runbook\'s whole schedule', async (t) => {
  const config = await load('refnet.yml');
  checkSchedule(t, config);
  checkRules(t, config);
  const at = (remediation: string) => scheduled(config, remediation).map((entry) => entry.cron);
  t.same(at('backup.pg_dump'), ['0 2 * * *'], 'daily backup at 02:00');
  t.match(config.targets.backups[0], { dir: '/var/backups/refnet', pattern: 'refnet_*.sql.gz', keepDays: 7 });
  t.match(scheduled(config, 'logs.rotate'), [{ cron: '0 3 * * *', params: { name: 'refnet', compressAfterDays: 1, deleteAfterDays: 30 } }], 'daily log rotation at 03:00');
  t.match(scheduled(config, 'redis.expire_keys'), [{ cron: '0 4 * * *', params: { pattern: 'celery-task-meta-*', when: 'ttl-over', ttlOverSeconds: 604800 } }], 'Celery cleanup at 04:00');
  t.match(config.remediation.retention, [{ name: 'job_logs', table: 'public.job_logs', timestampColumn: 'created_at', olderThan: '30 days', archiveTable: null }]);
  t.match(scheduled(config, 'postgres.retention'), [{ cron: '5 4 * * *', params: { policy: 'job_logs' } }], 'job_logs retention daily');
  t.match(scheduled(config, 'files.cleanup'), [{ cron: '10 4 * * *', params: { name: 'api-tmp', olderThanHours: 24 } }], 'temp files older than a day');
  t.match(config.targets.files, [{ name: 'api-tmp', pattern: '*' }], 'the api container\'s /tmp, mounted from the host');
  t.match(scheduled(config, 'postgres.vacuum'), [{ cron: '0 2 * * 0', params: { database: 'refnet', analyze: true } }], 'weekly VACUUM ANALYZE, Sunday 02:00');
  t.match(scheduled(config, 'postgres.reindex'), [{ cron: '0 3 * * 0', params: { concurrently: true } }], 'weekly REINDEX, concurrently');
  t.match(scheduled(config, 'docker.prune'), [{ cron: '30 3 * * 0', params: { volumes: false } }], 'weekly Docker prune, volumes never');
  t.match(scheduled(config, 'backup.verify'), [{ cron: '30 4 * * 0#4' }], 'restore test on the 4th Sunday');
  t.same(config.targets.redis[0]?.keyPatterns, ['celery-task-meta-*']);
  t.ok(config.targets.postgres[0]?.statements.enabled, 'top statements for the monthly tuning');
  for (const [alertname, remediation] of [['PostgresDeadTuplesHigh', 'postgres.vacuum'], ['BackupTooOld', 'backup.pg_dump'], ['RedisNoRecentSave', 'redis.bgsave'],
    ['RedisFragmentationHigh', 'redis.memory_purge'], ['DiskUsageHigh', 'docker.prune'], ['RedisKeyPatternBacklog', 'redis.expire_keys']] as const) {
    t.ok(rulesFor(config, alertname).some((rule) => rule.remediation === remediation), `${alertname} -> ${remediation}`);
  }
  t.same(rulesFor(config, 'PostgresDeadTuplesHigh')[0]?.params, { target: '{{labels.target}}', database: '{{labels.database}}', table: '{{labels.schema}}.{{labels.table}}' });
  // test/actions/postgres-freeze.test.ts runs this rule against a real server.
  t.match(rulesFor(config, 'PostgresWraparoundRisk'), [{ remediation: 'postgres.vacuum', params: { target: '{{labels.target}}', database: '{{labels.database}}', freeze: true } }]);
});

t.test('ai-micro-service.yml: schedule, rules and the runbook\'s whole schedule', async (t) => {
  const config = await load('ai-micro-service.yml');
  checkSchedule(t, config);
  checkRules(t, config);
  t.same(config.targets.postgres[0]?.databases, ['authdb', 'apidb', 'admindb']);
  t.same(config.targets.http.map((service) => new URL(service.url).port), ['8001', '8002', '8003'], 'health checks on 8001-8003');
  t.same(config.targets.disks, [{ path: '/' }]);
  t.same(scheduled(config, 'backup.pg_dump').map((entry) => entry.params.backup), ['authdb', 'apidb', 'admindb'], 'a daily backup per database');
  t.ok(scheduled(config, 'backup.pg_dump').every((entry) => /^\d+ 3 \* \* \*$/.test(entry.cron)), 'at 03:xx');
  const weeklyVacuums = scheduled(config, 'postgres.vacuum').filter((entry) => entry.params.full !== true);
  t.same(weeklyVacuums.map((entry) => entry.params.database), ['authdb', 'apidb', 'admindb'], 'VACUUM ANALYZE every database');
  t.ok(weeklyVacuums.every((entry) => /^\d+ 2 \* \* 0$/.test(entry.cron)), 'Sunday 02:xx');
  t.match(scheduled(config, 'redis.bgsave'), [{ cron: '30 2 * * 0' }], 'BGSAVE Sunday 02:30');
  t.match(config.remediation.retention, [
    { name: 'logs-archive', database: 'admindb', table: 'public.logs', archiveTable: 'public.logs_archive', olderThan: '6 months' },
    { name: 'deleted-documents', database: 'admindb', table: 'public.documents', timestampColumn: 'deleted_at', olderThan: '6 months' },
    { name: 'expired-refresh-tokens', database: 'authdb', table: 'public.refresh_tokens', timestampColumn: 'expires_at', olderThan: '30 days' },
  ]);
  t.same(scheduled(config, 'postgres.retention').map((entry) => entry.params.policy), ['logs-archive', 'deleted-documents', 'expired-refresh-tokens'], 'the monthly archive');
  t.match(scheduled(config, 'postgres.vacuum').filter((entry) => entry.params.full === true), [{ params: { database: 'admindb' } }], 'monthly VACUUM FULL admindb (its window is checked above)');
  t.same(scheduled(config, 'backup.verify').map((entry) => entry.params.backup).sort(), ['admindb', 'apidb', 'authdb'], 'a restore test for every database');
  t.ok(config.targets.postgres[0]?.statements.enabled, 'top 10 slow queries');
});

t.test('examples/prometheus.yml passes promtool check config, with the rule file', async (t) => {
  const result = await exec('promtool', ['check', 'config', example('prometheus.yml')]);
  t.equal(result.code, 0, result.output);
  t.match(result.output, /SUCCESS: 20 rules found|SUCCESS: \d+ rules found/);
  const config = z.object({
    rule_files: z.array(z.string()),
    alerting: z.object({ alertmanagers: z.array(z.object({ static_configs: z.array(z.object({ targets: z.array(z.string()) })) })) }),
    scrape_configs: z.array(z.object({ job_name: z.string(), static_configs: z.array(z.object({ targets: z.array(z.string()) })) })),
  }).parse(parseYaml(await readFile(example('prometheus.yml'), 'utf8')));
  t.same(config.rule_files, ['../alerts/upkeep.rules.yml']);
  t.match(config.scrape_configs, [{ job_name: 'upkeep', static_configs: [{ targets: ['127.0.0.1:9630'] }] }], 'UpkeepDown relies on job="upkeep"');
  t.same(config.alerting.alertmanagers[0]?.static_configs[0]?.targets, ['127.0.0.1:9093']);
});

t.test('examples/alertmanager.yml passes amtool and routes every shipped alert to upkeep', async (t) => {
  const check = await exec('amtool', ['check-config', example('alertmanager.yml')]);
  t.equal(check.code, 0, check.output);
  t.match(check.output, /SUCCESS/);
  for (const [alertname, labels] of alertLabels) {
    const args = Object.entries(labels).map(([name, value]) => `${name}=${value}`);
    const routed = await exec('amtool', ['config', 'routes', 'test', `--config.file=${example('alertmanager.yml')}`, ...args]);
    t.same(routed.stdout.trim().split(','), ['upkeep', 'operators'], `${alertname} reaches upkeep and the operators`);
  }
});

t.test('examples/alertmanager.yml groups by every label a shipped alert carries, and sends upkeep no more alerts than it takes', async (t) => {
  const shipped = z.object({
    route: z.object({ group_by: z.array(z.string()), routes: z.array(z.object({ receiver: z.string(), repeat_interval: z.string().optional() })) }),
    receivers: z.array(z.object({ name: z.string(), webhook_configs: z.array(z.object({ max_alerts: z.number().optional() })).optional() })),
  }).parse(parseYaml(await readFile(example('alertmanager.yml'), 'utf8')));
  const carried = new Set([...alertLabels.values()].flatMap((labels) => Object.keys(labels)));
  // severity is the same for every alert of an object; grouping by it splits nothing.
  t.same([...carried].filter((label) => label !== 'severity' && !shipped.route.group_by.includes(label)).sort(), [], 'no two objects share a notification');
  const upkeep = shipped.receivers.find((receiver) => receiver.name === 'upkeep')?.webhook_configs?.[0];
  t.equal(upkeep?.max_alerts, configSchema.parse({}).server.maxAlertsPerWebhook, 'max_alerts is server.maxAlertsPerWebhook\'s default');
  // A refused or failed alert runs again only when Alertmanager sends it again.
  t.equal(shipped.route.routes.find((route) => route.receiver === 'upkeep')?.repeat_interval, '10m', 'the upkeep route repeats within minutes, not the root\'s 4h');
});

t.test('a real Alertmanager running the example config delivers to upkeep with the bearer token', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'upkeep-am-example-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const received: { path: string; authorization: string | undefined; body: string }[] = [];
  const receiver = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => { body += chunk.toString(); });
    request.on('end', () => { received.push({ path: request.url ?? '', authorization: request.headers.authorization, body }); response.end(); });
  });
  const receiverPort = await freePort();
  await new Promise<void>((resolve) => receiver.listen(receiverPort, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => { receiver.closeAllConnections(); receiver.close(() => resolve()); }));

  // The example as shipped, with only the addresses and the token file moved into the sandbox.
  const shipped = z.object({ receivers: z.array(z.object({ name: z.string(), webhook_configs: z.array(z.record(z.string(), z.unknown())) })) })
    .passthrough().parse(parseYaml(await readFile(example('alertmanager.yml'), 'utf8')));
  await writeFile(join(dir, 'token'), 'example-token\n', { mode: 0o600 });
  for (const receiverConfig of shipped.receivers) {
    for (const webhook of receiverConfig.webhook_configs) {
      webhook.url = String(webhook.url).replace(/^http:\/\/127\.0\.0\.1:\d+/, `http://127.0.0.1:${receiverPort}`);
      const authorization = z.object({ authorization: z.object({ type: z.string(), credentials_file: z.string() }) }).safeParse(webhook.http_config);
      if (authorization.success) webhook.http_config = { authorization: { ...authorization.data.authorization, credentials_file: join(dir, 'token') } };
    }
  }
  await writeFile(join(dir, 'alertmanager.yml'), stringifyYaml(shipped));
  const port = await freePort();
  const daemon = startDaemon('prometheus-alertmanager', [`--config.file=${join(dir, 'alertmanager.yml')}`, `--storage.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`, '--cluster.listen-address=']);
  t.teardown(() => daemon.stop());
  const url = `http://127.0.0.1:${port}`;
  await waitFor('alertmanager', async () => {
    if (daemon.child.exitCode !== null) throw new Error(`alertmanager exited: ${daemon.output()}`);
    if (!(await fetch(`${url}/-/ready`)).ok) throw new Error('not ready');
  });

  const labels = alertLabels.get('PostgresDeadTuplesHigh') ?? {};
  const posted = await fetch(`${url}/api/v2/alerts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ labels }]) });
  t.equal(posted.status, 200);
  const delivery = await waitFor('the webhook to upkeep', async () => {
    const found = received.find((request) => request.path === '/alertmanager');
    if (!found) throw new Error('nothing yet');
    return found;
  }, 60_000, 250);
  t.equal(delivery.authorization, 'Bearer example-token', 'the bearer token from credentials_file');
  t.match(JSON.parse(delivery.body), { version: '4', status: 'firing', alerts: [{ status: 'firing', labels, fingerprint: /^[0-9a-f]+$/ }] });
});
