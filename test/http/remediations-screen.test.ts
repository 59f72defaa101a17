import t from 'tap';
import type { App } from '../../src/server.js';
import { finishedRun, postWebhook, startApp, tempDir, testConfig, webhookPayload } from './helpers.js';

// Names the config alone refuses, for the Redis and backup families: refused before anything is
// queued, as the Postgres, Docker, files and logs names are (test/http/routes.test.ts). Every
// refusal here comes from the config: no server is reached, so none is started (the URLs point at
// a closed port).
const PATTERN = 'celery-task-meta-*';
const UNKNOWN_REDIS = 'unknown redis target "nope" (not in targets.redis)';
const UNDECLARED_PATTERN = 'pattern "*" is not in targets.redis[cache].keyPatterns; declare it there to allow expire_keys on it';
const UNKNOWN_BACKUP = 'unknown backup "nope" (not in targets.backups)';
const SOURCELESS_BACKUP = 'backup "files" has no source: set targets.backups[files].source { target, database }';

const RULES = [
  { match: { alertname: 'RedisNoRecentSave' }, remediation: 'redis.bgsave', params: { target: '{{labels.target}}' } },
  { match: { alertname: 'RedisFragmentationHigh' }, remediation: 'redis.memory_purge', params: { target: '{{labels.target}}' } },
  { match: { alertname: 'RedisSlowlogGrowing' }, remediation: 'redis.slowlog_reset', params: { target: '{{labels.target}}' } },
  { match: { alertname: 'RedisKeyPatternBacklog' }, remediation: 'redis.expire_keys', allowRisk: 'destructive', params: { target: '{{labels.target}}', pattern: '{{labels.pattern}}' } },
  { match: { alertname: 'BackupVerifyTooOld' }, remediation: 'backup.verify', params: { backup: '{{labels.backup}}' } },
  { match: { alertname: 'BackupTooOld' }, remediation: 'backup.pg_dump', params: { backup: '{{labels.backup}}' } },
];

async function appWithTargets(t: Parameters<typeof startApp>[0]): Promise<App> {
  const dir = await tempDir(t);
  return startApp(t, testConfig({
    state: { dir },
    targets: {
      postgres: [{ name: 'main', url: 'postgres://upkeep@127.0.0.1:1/app', databases: ['app'] }],
      redis: [{ name: 'cache', url: 'redis://127.0.0.1:1', keyPatterns: [PATTERN] }],
      backups: [
        { name: 'refnet', dir, pattern: 'refnet_*.sql.gz', source: { target: 'main', database: 'app' } },
        { name: 'files', dir, pattern: 'files_*.tar.gz' },
      ],
    },
    remediation: { rules: RULES, windows: [{ name: 'always', cron: '* * * * *', durationMinutes: 1 }] },
  }));
}

async function journal(app: App): Promise<unknown> {
  return (await app.fastify.inject({ method: 'GET', url: '/runs' })).json();
}

async function post(app: App, remediation: string, params: Record<string, unknown>, query = '') {
  const reply = await app.fastify.inject({ method: 'POST', url: `/remediations/${remediation}${query}`, payload: { params, dryRun: true } });
  return [reply.statusCode, reply.json()];
}

const MANUAL: Array<[string, Record<string, unknown>, string]> = [
  ['redis.bgsave', { target: 'nope' }, UNKNOWN_REDIS],
  ['redis.memory_purge', { target: 'nope' }, UNKNOWN_REDIS],
  ['redis.slowlog_reset', { target: 'nope' }, UNKNOWN_REDIS],
  ['redis.expire_keys', { target: 'nope', pattern: PATTERN }, UNKNOWN_REDIS],
  ['redis.expire_keys', { target: 'cache', pattern: '*' }, UNDECLARED_PATTERN],
  ['backup.verify', { backup: 'nope' }, UNKNOWN_BACKUP],
  ['backup.verify', { backup: 'files' }, SOURCELESS_BACKUP],
];

t.test('a manual run naming what the config refuses is a 400, and nothing is queued or journalled', async (t) => {
  const app = await appWithTargets(t);
  for (const [remediation, params, error] of MANUAL) {
    for (const query of ['', '?wait=true']) {
      t.same(await post(app, remediation, params, query), [400, { error }], `${remediation} ${JSON.stringify(params)}${query}`);
    }
  }
  t.same(await journal(app), { runs: [], next: null }, 'GET /runs has nothing');
});

t.test('an alert naming what the config refuses is ignored with the reason, never queued', async (t) => {
  const app = await appWithTargets(t);
  const alerts: Array<[string, Record<string, string>, string, string]> = [
    ['RedisNoRecentSave', { target: 'nope' }, 'redis.bgsave', UNKNOWN_REDIS],
    ['RedisFragmentationHigh', { target: 'nope' }, 'redis.memory_purge', UNKNOWN_REDIS],
    ['RedisSlowlogGrowing', { target: 'nope' }, 'redis.slowlog_reset', UNKNOWN_REDIS],
    ['RedisKeyPatternBacklog', { target: 'nope', pattern: PATTERN }, 'redis.expire_keys', UNKNOWN_REDIS],
    ['RedisKeyPatternBacklog', { target: 'cache', pattern: '*' }, 'redis.expire_keys', UNDECLARED_PATTERN],
    ['BackupVerifyTooOld', { backup: 'nope' }, 'backup.verify', UNKNOWN_BACKUP],
  ];
  for (const [index, [alertname, labels, remediation, reason]] of alerts.entries()) {
    const fingerprint = `screen${index}`;
    const reply = await postWebhook(app, await webhookPayload({ fingerprint, labels: { alertname, ...labels } }));
    t.equal(reply.statusCode, 202);
    t.same(reply.body?.accepted, [], `${alertname} ${JSON.stringify(labels)}: nothing accepted`);
    t.match(reply.body?.ignored, [{ fingerprint, remediation, reason: `rejected: ${reason}`, runId: String }]);
    const run = await finishedRun(app, reply.body?.ignored[0]?.runId ?? '');
    t.match(run, { status: 'rejected', reason, trigger: 'alert' }, 'journalled as rejected, and never started');
    t.equal(run.startedAt, undefined);
  }
});

t.test('backup.pg_dump refuses an unknown backup the same way', async (t) => {
  const app = await appWithTargets(t);
  t.same(await post(app, 'backup.pg_dump', { backup: 'nope' }), [400, { error: UNKNOWN_BACKUP }]);
  t.same(await post(app, 'backup.pg_dump', { backup: 'files' }), [400, { error: SOURCELESS_BACKUP }]);
  t.same(await journal(app), { runs: [], next: null });
  const reply = await postWebhook(app, await webhookPayload({ fingerprint: 'dump', labels: { alertname: 'BackupTooOld', backup: 'nope' } }));
  t.same(reply.body?.accepted, []);
  t.match(reply.body?.ignored, [{ fingerprint: 'dump', remediation: 'backup.pg_dump', reason: `rejected: ${UNKNOWN_BACKUP}` }]);
});
