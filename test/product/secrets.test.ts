import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { z } from 'zod';
import { filesUnder, leaks, sampleCommandLines, SECRET_RUNS, SECRETS, secretConfig, startSecretServers } from '../fixtures/secrets.js';
import { serveInstalled, upkeep, writeConfig } from './installed.js';

const runReply = z.object({ id: z.string(), status: z.string(), error: z.string().optional() });

t.test('the installed upkeep keeps every secret: serve at trace level, the API, upkeep run, check-config, ps and the state dir', async (t) => {
  const servers = await startSecretServers();
  t.teardown(() => servers.destroy());
  const root = await mkdtemp(join(tmpdir(), 'upkeep-product-secrets-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const { file } = await writeConfig(t, secretConfig(servers, root));
  const outputs: Record<string, string> = {};
  // What `ps` shows of pg_dump, psql, gzip and sed while they run, from serve and from upkeep run.
  const sampler = sampleCommandLines((line) => /pg_dump|psql|gzip|sed/.test(line) && (line.includes(`:${servers.postgres.port}/`) || line.includes(root)));

  const served = await serveInstalled(t, file, { args: ['--log-level', 'trace'] });
  const auth = { authorization: `Bearer ${SECRETS.authToken}`, 'content-type': 'application/json' };
  for (const path of ['/metrics', '/readyz', '/remediations']) {
    const response = await fetch(`${served.base}${path}`);
    t.equal(response.status, 200, path);
    outputs[path] = await response.text();
  }
  t.match(outputs['/readyz'], /"target":"disabled","up":false,"lastSuccessSeconds":null,"lastError":"WRONGPASS invalid username-password pair or user is disabled\."/);
  for (const [headers, status] of [[{ ...auth, authorization: 'Bearer wrong' }, 401], [auth, 400]] as const) {
    const response = await fetch(`${served.base}/remediations/backup.pg_dump`, { method: 'POST', headers, body: JSON.stringify({ params: { backup: 'query', extra: SECRETS.pgQuery } }) });
    t.equal(response.status, status);
    outputs[`POST ${status}`] = await response.text();
  }
  for (const run of SECRET_RUNS) {
    const response = await fetch(`${served.base}/remediations/${run.remediation}?wait=true`, { method: 'POST', headers: auth, body: JSON.stringify({ params: run.params }) });
    const text = await response.text();
    const record = runReply.parse(JSON.parse(text));
    t.equal(record.status, run.status, `${run.remediation} ${JSON.stringify(run.params)}: ${record.error ?? ''}`);
    outputs[`POST ${run.remediation} ${JSON.stringify(run.params)}`] = text;
    outputs[`/runs/${record.id}`] = await (await fetch(`${served.base}/runs/${record.id}`)).text();
    t.ok(served.alive(), 'alive');
  }
  outputs['/runs'] = await (await fetch(`${served.base}/runs?limit=100`)).text();
  t.equal(await served.stop(), 0);
  outputs['serve log'] = served.output();
  t.match(outputs['serve log'], /"level":20,.*"msg":"remediation failed"/, 'debug lines (with whole errors) were logged');

  for (const [remediation, param, code] of [['backup.pg_dump', 'backup=query', 0], ['backup.verify', 'backup=userinfo', 0], ['redis.bgsave', 'target=disabled', 1]] as const) {
    const result = await upkeep(['run', remediation, '--param', param, '--log-level', 'trace', '--config', file], { timeoutMs: 120_000 });
    t.equal(result.code, code, `upkeep run ${remediation}: ${result.stderr.slice(-500)}`);
    outputs[`upkeep run ${remediation} stdout`] = result.stdout;
    outputs[`upkeep run ${remediation} stderr`] = result.stderr;
  }
  t.match(outputs['upkeep run redis.bgsave stdout'], /^error: WRONGPASS invalid username-password pair or user is disabled\.$/m);
  t.match(outputs['upkeep run backup.pg_dump stdout'], /^ {2}exec: \S+pg_dump --format=plain --compress=6 --no-password --dbname postgres:\/\/upkeep_q@127\.0\.0\.1:\d+\/owned\?sslmode=disable > /m);
  const check = await upkeep(['check-config', '--log-level', 'trace', '--config', file]);
  t.equal(check.code, 0, check.stderr);
  outputs['check-config'] = check.stdout + check.stderr;

  const commandLines = await sampler.stop();
  outputs.ps = commandLines.join('\n');
  t.ok(commandLines.some((line) => line.includes('pg_dump') && line.includes('postgres://upkeep_q@')), 'pg_dump was seen running');
  t.ok(commandLines.some((line) => line.includes('psql') && line.includes('postgres://upkeep_u@')), 'psql was seen running');
  Object.assign(outputs, await filesUnder(join(root, 'state')));
  t.ok(Object.keys(outputs).some((name) => /journal\/runs-\d+\.jsonl$/.test(name)), 'the journal was read');
  t.ok(Object.keys(outputs).some((name) => /guards\/.+\.jsonl$/.test(name)), 'so was the guards\' memory');
  for (const [name, text] of Object.entries(outputs)) t.same(leaks(text), [], `no secret in ${name}`);
});

t.test('the installed check-config and serve refuse an http target with credentials without echoing them', async (t) => {
  const { file } = await writeConfig(t, { targets: { http: [{ name: 'web', url: `http://probe:${SECRETS.httpUserinfo}@127.0.0.1:8080/health` }] } });
  for (const command of ['check-config', 'serve']) {
    const result = await upkeep([command, '--log-level', 'trace', '--config', file]);
    t.equal(result.code, 1, command);
    t.same(result.stderr.split('\n').slice(1), ['  targets.http[0].url: must not contain credentials (user:password@): upkeep sends none; use an endpoint that needs no login', ''], command);
    t.same(leaks(result.stdout + result.stderr), [], command);
  }
});
