import t from 'tap';
import { stringify } from 'yaml';
import { z } from 'zod';
import { parseConfig } from '../../src/config/load.js';
import { checkReferences, type Registries } from '../../src/config/references.js';
import type { Config } from '../../src/config/schema.js';
import { COLLECTORS } from '../../src/collectors/registry.js';
import { ACTIONS } from '../../src/actions/registry.js';

const REGISTRIES: Registries = { remediations: ACTIONS, collectors: COLLECTORS.map((collector) => collector.name) };

const TARGETS = {
  postgres: [{ name: 'main', url: 'postgres://upkeep:pg-secret-1@127.0.0.1/app', databases: ['app'] }, { name: 'any', url: 'postgres://127.0.0.1/x' }],
  redis: [{ name: 'cache', url: 'redis://:redis-secret-2@127.0.0.1:6379', keyPatterns: ['celery-task-meta-*'] }],
  docker: [{ name: 'local' }],
  backups: [
    { name: 'nightly', dir: '/tmp', pattern: 'nightly_*.sql.gz', source: { target: 'main', database: 'app' } },
    // A directory of its own: in nightly's, *.gz would also match nightly's dumps (a config error).
    { name: 'copied', dir: '/tmp/copied', pattern: '*.gz' },
  ],
  logs: [{ name: 'app-logs', dir: '/tmp' }],
  files: [{ name: 'scratch', dir: '/tmp' }],
};
const RETENTION = [{ name: 'job_logs', target: 'main', database: 'app', table: 'job_logs', timestampColumn: 'created_at', olderThan: '30 days' }];

function config(raw: Record<string, unknown>): Readonly<Config> {
  const parsed = parseConfig(stringify({ targets: TARGETS, ...raw, remediation: { retention: RETENTION, ...(raw.remediation ?? {}) } }), {});
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  return parsed.config;
}

const schedule = (remediation: string, params: Record<string, unknown>) => ({ schedule: [{ name: 'job', cron: '0 2 * * *', remediation, params }] });
const rule = (remediation: string, params: Record<string, unknown>) => ({ remediation: { rules: [{ match: { alertname: 'A' }, remediation, params }] } });
const check = (raw: Record<string, unknown>) => checkReferences(config(raw), REGISTRIES);

t.test('a config whose every reference resolves has no errors', async (t) => {
  t.same(check({
    collectors: { disabled: ['docker', 'http'] },
    remediation: { rules: [
      { match: { alertname: 'PostgresDeadTuplesHigh' }, remediation: 'postgres.vacuum', params: { target: '{{labels.target}}', database: '{{labels.database}}', table: '{{labels.schema}}.{{labels.table}}' } },
      { match: { alertname: 'DiskUsageHigh' }, remediation: 'docker.prune', params: { target: 'local', volumes: false } },
      { match: { alertname: 'BackupTooOld' }, remediation: 'backup.pg_dump', params: { backup: '{{labels.backup}}' } },
    ] },
    schedule: [
      { name: 'a', cron: '0 2 * * *', remediation: 'postgres.vacuum', params: { target: 'main', database: 'app', full: 'true' } },
      { name: 'b', cron: '0 2 * * *', remediation: 'postgres.reindex', params: { target: 'any', database: 'whatever' } },
      { name: 'c', cron: '0 2 * * *', remediation: 'postgres.retention', params: { policy: 'job_logs' } },
      { name: 'd', cron: '0 2 * * *', remediation: 'redis.expire_keys', params: { target: 'cache', pattern: 'celery-task-meta-*', when: 'ttl-over', ttlOverSeconds: 60 } },
      { name: 'e', cron: '0 2 * * *', remediation: 'logs.rotate', params: { name: 'app-logs' } },
      { name: 'f', cron: '0 2 * * *', remediation: 'files.cleanup', params: { name: 'scratch', olderThanHours: 24 } },
      { name: 'h', cron: '0 2 * * *', remediation: 'backup.verify', params: { backup: 'nightly' } },
    ],
  }), []);
});

t.test('an unknown remediation: the nearest name for a typo, else the list', async (t) => {
  t.same(check(rule('postgres.vacum', { target: 'main', database: 'app' })), [
    { path: 'remediation.rules[0].remediation', message: 'unknown remediation (did you mean "postgres.vacuum"?)' },
  ]);
  t.same(check(schedule('vacuum', { target: 'main' })), [
    { path: 'schedule[0].remediation', message: 'unknown remediation (did you mean "postgres.vacuum"?)' },
  ]);
  t.same(check(schedule('frobnicate', {})), [{
    path: 'schedule[0].remediation',
    message: 'unknown remediation; the remediations are postgres.vacuum, postgres.analyze, postgres.reindex, postgres.retention, postgres.terminate_idle, redis.bgsave, redis.memory_purge, redis.expire_keys, redis.slowlog_reset, docker.prune, logs.rotate, files.cleanup, backup.pg_dump, backup.verify',
  }]);
});

t.test('literal params parse against the remediation\'s own schema, each error at its param path', async (t) => {
  t.same(check(schedule('backup.pg_dump', { backup: 'nightly', keepDays: 'a week' })), [
    { path: 'schedule[0].params.keepDays', message: 'Invalid input: expected number, received string' },
  ]);
  t.same(check(schedule('postgres.vacuum', { target: 'main', database: 'app', colour: 'blue' })), [
    { path: 'schedule[0].params.colour', message: 'unknown key' },
  ]);
  t.same(check(schedule('postgres.analyze', { target: 'main', database: 'app' })), [
    { path: 'schedule[0].params.table', message: 'is required' },
  ]);
  t.same(check(schedule('postgres.reindex', { target: 'main', database: 'app', table: 't', index: 'i' })), [
    { path: 'schedule[0].params', message: 'give table or index, not both' },
  ], 'rules across params apply when every param is literal');
  t.same(check(rule('redis.expire_keys', { target: 'cache', pattern: 'celery-task-meta-*', mode: 'expire' })), [
    { path: 'remediation.rules[0].params.expireSeconds', message: 'required when mode is "expire"' },
  ]);
});

t.test('templated params: what can be checked is checked', async (t) => {
  t.same(check(rule('postgres.vacuum', { target: '{{labels.target}}', database: 'app', minDeadTuples: 'lots', colour: '{{labels.colour}}' })), [
    { path: 'remediation.rules[0].params.minDeadTuples', message: 'Invalid input: expected number, received string' },
    { path: 'remediation.rules[0].params.colour', message: 'unknown key' },
  ]);
  t.same(check(rule('postgres.vacuum', { target: '{{labels.target}}' })), [
    { path: 'remediation.rules[0].params.database', message: 'is required' },
  ]);
  t.same(check(rule('postgres.reindex', { target: '{{labels.target}}', database: 'app', table: '{{labels.table}}', index: 'i' })), [],
    'a rule across params waits for the alert\'s values');
  t.same(check(rule('postgres.vacuum', { target: '{{labels.target}}', database: 'elsewhere' })), [],
    'the database is checked against the target\'s list only when the target is literal');
  t.same(check(schedule('postgres.vacuum', { target: '{{labels.target}}', database: 'app' })), [
    { path: 'schedule[0].params.target', message: '{{labels.…}} is filled from an alert\'s labels, and a schedule entry has no alert' },
  ]);
});

t.test('the targets, backups, logs, files and policies named by literal params exist', async (t) => {
  t.same(check(schedule('postgres.vacuum', { target: 'mian', database: 'app' })), [
    { path: 'schedule[0].params.target', message: 'names no targets.postgres entry (did you mean "main"?)' },
  ]);
  t.same(check(rule('redis.bgsave', { target: 'main' })), [
    { path: 'remediation.rules[0].params.target', message: 'names no targets.redis entry' },
  ], 'a postgres target is not a redis target');
  t.same(check(schedule('docker.prune', { target: 'remote' })), [
    { path: 'schedule[0].params.target', message: 'names no targets.docker entry' },
  ]);
  t.same(check(schedule('postgres.vacuum', { target: 'main', database: 'other' })), [
    { path: 'schedule[0].params.database', message: 'is not in that target\'s databases list' },
  ]);
  t.same(check(schedule('backup.pg_dump', { backup: 'nightlly' })), [
    { path: 'schedule[0].params.backup', message: 'names no targets.backups entry (did you mean "nightly"?)' },
  ]);
  t.same(check(schedule('backup.verify', { backup: 'copied' })), [
    { path: 'schedule[0].params.backup', message: 'names a targets.backups entry without source { target, database }, which backup.verify needs' },
  ]);
  t.same(check(schedule('logs.rotate', { name: 'scratch' })), [
    { path: 'schedule[0].params.name', message: 'names no targets.logs entry' },
  ], 'logs.rotate works on log directories only');
  t.same(check(schedule('files.cleanup', { name: 'tmp', olderThanHours: 1 })), [
    { path: 'schedule[0].params.name', message: 'names no targets.files entry' },
  ]);
  t.same(check(schedule('files.cleanup', { name: 'app-logs', olderThanHours: 1 })), [
    { path: 'schedule[0].params.name', message: 'names no targets.files entry' },
  ], 'files.cleanup never deletes from a log directory');
  t.same(check(schedule('postgres.retention', { policy: 'job-logs' })), [
    { path: 'schedule[0].params.policy', message: 'names no remediation.retention entry (did you mean "job_logs"?)' },
  ]);
  t.same(check(schedule('postgres.retention', { table: 'x', target: 'replica' })), [
    { path: 'schedule[0].params.target', message: 'names no targets.postgres entry' },
  ]);
  t.same(check(schedule('postgres.retention', { policy: 'job_logs', target: 'any', database: 'other', table: 'public.events' })), [
    { path: 'schedule[0].params.target', message: 'is not retention policy "job_logs"\'s target ("main"): the policy decides what is deleted; leave it out' },
    { path: 'schedule[0].params.database', message: 'is not retention policy "job_logs"\'s database ("app"): the policy decides what is deleted; leave it out' },
    { path: 'schedule[0].params.table', message: 'is not retention policy "job_logs"\'s table ("job_logs"): the policy decides what is deleted; leave it out' },
  ], 'every run of it would be refused');
  t.same(check(schedule('postgres.retention', { policy: 'job_logs', target: 'main', database: 'app', table: 'public.job_logs' })), [], 'the policy\'s own, the table spelled another way');
  t.same(check(rule('postgres.retention', { policy: 'job_logs', table: '{{labels.table}}' })), [], 'a templated table is checked when the alert fills it');
  t.same(check(schedule('redis.expire_keys', { target: 'cache', pattern: 'session:*' })), [
    { path: 'schedule[0].params.pattern', message: 'is not in that target\'s keyPatterns; declare it there to allow redis.expire_keys on it' },
  ], 'every run of it would be rejected');
  t.same(check(schedule('redis.expire_keys', { target: 'cache', pattern: 'celery-task-meta-*' })), [], 'a declared pattern');
  t.same(check(schedule('backup.pg_dump', { backup: '' })), [
    { path: 'schedule[0].params.backup', message: 'must not be empty' },
  ], 'a param that fails its schema is not looked up as well');
});

t.test('collectors.disabled names only known collectors', async (t) => {
  t.same(check({ collectors: { disabled: ['disks', 'postgress'] } }), [
    { path: 'collectors.disabled[1]', message: 'is not a collector; the collectors are disks, backups, logs, http, postgres, redis, docker' },
  ]);
});

t.test('no message quotes the offending value', async (t) => {
  const secret = 'tok-3f9a7c21b0';
  const errors = check({
    collectors: { disabled: [secret] },
    remediation: { rules: [{ match: { alertname: 'A' }, remediation: secret, params: {} }] },
    schedule: [
      { name: 'a', cron: '0 2 * * *', remediation: 'redis.bgsave', params: { target: secret } },
      { name: 'b', cron: '0 2 * * *', remediation: 'backup.pg_dump', params: { backup: 'nightly', keepDays: secret } },
    ],
  });
  t.equal(errors.length, 4);
  t.notMatch(JSON.stringify(errors), secret);
});

t.test('a remediation whose params are not an object schema gets the whole-params check only', async (t) => {
  const registries: Registries = { remediations: [{ name: 'custom.thing', params: z.record(z.string(), z.string()) }], collectors: [] };
  const parsed = parseConfig(stringify({ remediation: { rules: [{ match: { alertname: 'A' }, remediation: 'custom.thing', params: { a: '{{labels.a}}', n: 1 } }] } }), {});
  t.ok(parsed.ok);
  if (parsed.ok) t.same(checkReferences(parsed.config, registries), []);
});
