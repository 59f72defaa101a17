import t from 'tap';
import { z } from 'zod';
import { main } from '../src/cli.js';
import { parseConfig } from '../src/config/load.js';
import { configSchema } from '../src/config/schema.js';
import { runRecordSchema } from '../src/engine/journal.js';
import { buildApp } from '../src/server.js';
import { capturedLogger, tempDir } from './http/helpers.js';
import { filesUnder, leaks, sampleCommandLines, SECRET_RUNS, SECRETS, secretConfig, startSecretServers } from './fixtures/secrets.js';
import { writeConfigFile } from './actions/backup-fixture.js';

const statusesShape = z.object({ targets: z.array(z.object({ collector: z.string(), target: z.string(), up: z.boolean(), lastError: z.string().nullable() })) });

t.test('no password or token leaves upkeep: trace logs, every route, error replies, the journal, process arguments', async (t) => {
  const servers = await startSecretServers();
  t.teardown(() => servers.destroy());
  const root = await tempDir(t, 'upkeep-secrets-');
  const config = configSchema.parse(secretConfig(servers, root));
  const captured = capturedLogger('trace');
  const app = await buildApp({ config, log: captured.log });
  let closed = false;
  t.teardown(async () => { if (!closed) await app.fastify.close(); });
  const outputs: Record<string, string> = {};
  const auth = { authorization: `Bearer ${SECRETS.authToken}` };

  for (const url of ['/metrics', '/readyz', '/remediations']) {
    const reply = await app.fastify.inject({ url });
    t.equal(reply.statusCode, 200, url);
    outputs[url] = reply.body;
  }
  const statuses = statusesShape.parse(JSON.parse(outputs['/readyz'] ?? '')).targets;
  const lastError = (collector: string, target: string) => statuses.find((status) => status.collector === collector && status.target === target)?.lastError;
  t.match(lastError('redis', 'disabled'), /^WRONGPASS invalid username-password pair or user is disabled\.$/, 'the cause is kept');
  t.match(lastError('redis', 'wrong'), /^WRONGPASS/);
  t.match(lastError('postgres', 'wrong'), /^password authentication failed for user "upkeep_u"$/);
  t.equal(lastError('postgres', 'query'), null, 'a ?password= URL connects');
  t.equal(lastError('postgres', 'userinfo'), null, 'a user:password@ URL connects');

  // Error replies: a bad token, bad params, an unknown remediation.
  for (const [path, headers, status] of [['/remediations/backup.pg_dump', { authorization: 'Bearer wrong' }, 401], ['/remediations/backup.pg_dump', auth, 400], ['/remediations/nope', auth, 404]] as const) {
    const reply = await app.fastify.inject({ method: 'POST', url: path, headers, payload: { params: { backup: 'query', extra: SECRETS.pgQuery } } });
    t.equal(reply.statusCode, status, `${path} ${status}`);
    outputs[`POST ${path} ${status}`] = reply.body;
  }

  const sampler = sampleCommandLines((line) => /pg_dump|psql|gzip|sed/.test(line) && (line.includes(`:${servers.postgres.port}/`) || line.includes(root)));
  for (const run of SECRET_RUNS) {
    for (const dryRun of [true, false]) {
      const reply = await app.fastify.inject({ method: 'POST', url: `/remediations/${run.remediation}?wait=true`, headers: auth, payload: { params: run.params, dryRun } });
      const record = runRecordSchema.parse(JSON.parse(reply.body));
      // A dry run still reads the system (check and plan): with a wrong password it fails too.
      t.equal(record.status, dryRun && run.status === 'success' ? 'dry_run' : run.status, `${run.remediation} ${JSON.stringify(run.params)}${dryRun ? ' (dry run)' : ''}: ${record.error ?? ''}`);
      outputs[`POST /remediations/${run.remediation} ${JSON.stringify(run.params)} ${dryRun}`] = reply.body;
      const byId = await app.fastify.inject({ url: `/runs/${record.id}` });
      outputs[`/runs/${record.id}`] = byId.body;
    }
  }
  const commandLines = await sampler.stop();
  outputs.ps = commandLines.join('\n');
  t.ok(commandLines.some((line) => line.includes('pg_dump') && line.includes('--dbname postgres://upkeep_q@')), 'pg_dump was seen running');
  t.ok(commandLines.some((line) => line.includes('psql') && line.includes('--dbname postgres://upkeep_u@')), 'the verify\'s psql was seen running');
  outputs['/runs'] = (await app.fastify.inject({ url: '/runs?limit=100' })).body;
  const runs = z.object({ runs: z.array(runRecordSchema) }).parse(JSON.parse(outputs['/runs']));
  t.match(runs.runs.find((run) => run.remediation === 'redis.bgsave' && run.params.target === 'disabled' && !run.dryRun)?.error, /^WRONGPASS/);
  t.match(runs.runs.find((run) => run.remediation === 'postgres.vacuum' && !run.dryRun)?.error, /password authentication failed/);
  const dumpPlan = runs.runs.find((run) => run.remediation === 'backup.pg_dump' && run.params.backup === 'query' && run.dryRun)?.plan?.[0]?.detail;
  t.match(dumpPlan, /pg_dump --format=plain --compress=6 --no-password --dbname postgres:\/\/upkeep_q@127\.0\.0\.1:\d+\/owned\?sslmode=disable >/, 'the plan is the command line, without the password');

  await app.fastify.close();
  closed = true;
  outputs.log = captured.text();
  // At debug, a failed run logs its whole error: ioredis's carries the HELLO 3 AUTH command.
  const logged = outputs.log.split('\n').filter((line) => line !== '').map((line) => z.record(z.string(), z.unknown()).parse(JSON.parse(line)));
  t.match(logged.find((line) => line.msg === 'remediation failed' && line.remediation === 'redis.bgsave'), { level: 20, err: { message: /^WRONGPASS/, command: 'hello' } });
  Object.assign(outputs, await filesUnder(config.state.dir));
  t.ok(Object.keys(outputs).some((name) => /journal\/runs-\d+\.jsonl$/.test(name)), 'the journal was read');
  t.ok(Object.keys(outputs).some((name) => /guards\/.+\.jsonl$/.test(name)), 'so was the guards\' memory');
  for (const [name, text] of Object.entries(outputs)) t.same(leaks(text), [], `no secret in ${name}`);
});

t.test('check-config refuses an http target or Alertmanager URL with credentials, and an unparseable URL, without echoing them', async (t) => {
  const file = await writeConfigFile({
    alertmanager: { url: `http://am:${SECRETS.httpUserinfo}@127.0.0.1:9093` },
    targets: {
      http: [{ name: 'web', url: `http://probe:${SECRETS.httpUserinfo}@127.0.0.1:8080/health` }],
      postgres: [{ name: 'main', url: `postgres://u:${SECRETS.pgQuery}@127.0.0.1:99999/db` }],
    },
  });
  const out: string[] = [];
  const err: string[] = [];
  t.equal(await main(['check-config', '--config', file], { out: (line) => out.push(line), err: (line) => err.push(line), env: {} }), 1);
  t.same(out, []);
  t.same(err.join('\n').split('\n').slice(1), [
    '  alertmanager.url: must not contain credentials (user:password@): upkeep sends none; use an endpoint that needs no login',
    '  targets.postgres[0].url: must be a valid URL (percent-encode special characters in the user name and password)',
    '  targets.http[0].url: must not contain credentials (user:password@): upkeep sends none; use an endpoint that needs no login',
  ]);
  t.same(leaks(err.join('\n')), []);
});

t.test('a YAML error names the line and column, never the line itself (it may hold a password)', async (t) => {
  const url = `postgres://u:${SECRETS.pgQuery}@127.0.0.1/db`;
  const line = `  postgres: [{ name: main, url: "${url}" ]`;
  const cases: Array<[string, string]> = [
    [`targets:\n${line}\n`, `at line 2, column ${line.indexOf(' ]') + 2}: bad indentation`],
    [`server: { authToken: '${SECRETS.authToken}\n`, 'at line 2, column 1: a closing bracket, quote, comma or colon is missing'],
    // The parser prints warnings, excerpt included, to stderr; they are config errors instead.
    [`server: { authToken: !vault ${SECRETS.authToken} }\n`, 'at line 1, column 22: an unknown tag (!name); upkeep reads plain YAML'],
  ];
  for (const [text, problem] of cases) {
    const parsed = parseConfig(text, {});
    t.same(parsed.ok ? [] : parsed.errors, [{ path: '(root)', message: `not valid YAML ${problem}` }]);
  }
});
