import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { main, type Io } from '../../src/cli.js';
import { parseDurationSeconds } from '../../src/config/duration.js';
import { formatPath, interpolate } from '../../src/config/interpolate.js';
import { ConfigInvalid, loadConfig, parseConfig } from '../../src/config/load.js';
import { tempDir } from '../http/helpers.js';

function capture(env: Record<string, string> = {}): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (line) => stdout.push(line), err: (line) => stderr.push(line), env };
}

async function configFile(t: { teardown(fn: () => unknown): void }, text: string): Promise<string> {
  const dir = await tempDir(t, 'upkeep-config-');
  const file = join(dir, 'upkeep.yml');
  await writeFile(file, text);
  return file;
}

t.test('durations read the way runbooks write them', async (t) => {
  t.equal(parseDurationSeconds('30 days'), 30 * 86400);
  t.equal(parseDurationSeconds('6 months'), 6 * 30 * 86400);
  t.equal(parseDurationSeconds('12h'), 43200);
  t.equal(parseDurationSeconds('90s'), 90);
  t.equal(parseDurationSeconds('1.5 hours'), 5400);
  t.equal(parseDurationSeconds('2 fortnights'), null);
  t.equal(parseDurationSeconds('soon'), null);
});

t.test('paths are written as in error messages', async (t) => {
  t.equal(formatPath(['targets', 'postgres', 0, 'url']), 'targets.postgres[0].url');
  t.equal(formatPath([]), '(root)');
});

t.test('interpolation', async (t) => {
  const errors: { path: string; message: string }[] = [];
  const env = { HOST: 'db.internal', PORT: '5433', EMPTY: '', FLAG: 'true' };
  const out = interpolate({
    url: 'postgres://${HOST}:${PORT}/app',
    port: '${PORT}',
    fallback: '${MISSING:-9630}',
    emptyUsesDefault: '${EMPTY:-x}',
    flag: '${FLAG}',
    word: '${HOST}',
    list: ['${HOST}', 3, null],
  }, env, errors);
  t.same(out, {
    url: 'postgres://db.internal:5433/app',
    port: 5433,
    fallback: 9630,
    emptyUsesDefault: 'x',
    flag: true,
    word: 'db.internal',
    list: ['db.internal', 3, null],
  });
  t.same(errors, []);
  t.same(interpolate({ quote: '${QUOTE}', fallback: '${MISSING:-"/var/log}', flow: '${FLOW}' }, { QUOTE: '"s3cret', FLOW: '[a' }, errors),
    { quote: '"s3cret', fallback: '"/var/log', flow: '[a' }, 'a value YAML cannot read as a scalar stays a string (found by the config fuzz suite)');
  t.same(errors, []);
  interpolate({ a: [{ token: 'Bearer ${SECRET}' }] }, {}, errors);
  t.same(errors, [{ path: 'a[0].token', message: 'environment variable SECRET is not set and has no default' }]);
});

t.test('a valid config is typed, defaulted and frozen', async (t) => {
  const result = parseConfig('targets:\n  disks: [{ path: / }]\n', {});
  t.ok(result.ok);
  if (!result.ok) return;
  t.equal(result.config.server.port, 9630);
  t.equal(result.config.collectors.timeoutSeconds, 5);
  t.same(result.config.targets.disks, [{ path: '/' }]);
  t.ok(Object.isFrozen(result.config.targets.disks[0]));
  t.throws(() => { (result.config.server as { port: number }).port = 1; });
});

t.test('errors name their path', async (t) => {
  const text = [
    'server: { port: "${PORT}", colour: blue }',
    'targets:',
    '  postgres:',
    '    - name: main',
    '      url: 42',
    '  disks: [{ path: / }]',
    'collectors: { timeoutSeconds: fast }',
  ].join('\n');
  const result = parseConfig(text, {});
  t.notOk(result.ok);
  if (result.ok) return;
  const messages = result.errors.map((e) => `${e.path}: ${e.message}`);
  t.ok(messages.includes('server.port: environment variable PORT is not set and has no default'), 'unset variable');
  t.ok(messages.includes('server.colour: unknown key'), 'unknown key');
  t.ok(messages.some((m) => m.startsWith('targets.postgres[0].url: ')), 'wrong type in a list item');
  t.ok(messages.some((m) => m.startsWith('collectors.timeoutSeconds: ')), 'wrong type');
});

t.test('a PostgreSQL URL\'s TLS parameters are checked where they are written: the mode, the CA a mode needs, the files', async (t) => {
  const result = parseConfig([
    'targets:',
    '  postgres:',
    '    - { name: a, url: "postgres://u@h/app?sslmode=required" }',
    '    - { name: b, url: "postgres://u@h/app?sslmode=verify-ca" }',
    '    - { name: c, url: "postgres://u@h/app?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem" }',
    '    - { name: d, url: "postgres://u@h/app?ssl=true" }',
    '    - { name: e, url: "postgres://u@h/app?sslmode=verify-full&sslrootcert=/etc/ssl/certs/ca-certificates.crt" }',
    'state: { postgres: { url: "postgres://u@h/state?sslmode=verify-ca" } }',
  ].join('\n'), {});
  t.notOk(result.ok);
  if (result.ok) return;
  t.same(result.errors.map((e) => `${e.path}: ${e.message}`).sort(), [
    'state.postgres.url: sslmode=verify-ca needs sslrootcert (the CA file the server\'s certificate is checked against)',
    'targets.postgres[0].url: sslmode "required" is not one of disable, allow, prefer, require, verify-ca, verify-full',
    'targets.postgres[1].url: sslmode=verify-ca needs sslrootcert (the CA file the server\'s certificate is checked against)',
    'targets.postgres[2].url: sslrootcert /nonexistent/ca.pem: cannot read it (ENOENT)',
    'targets.postgres[3].url: "ssl" is not a libpq parameter (pg_dump and psql refuse it); set sslmode (disable, require, verify-ca, verify-full)',
  ].sort(), 'each bad URL once, by its path; a readable CA file passes');
});

t.test('YAML syntax errors and empty files', async (t) => {
  const broken = parseConfig('server: [unclosed', {});
  t.notOk(broken.ok);
  if (!broken.ok) t.match(broken.errors[0]?.message, /not valid YAML/);
  t.ok(parseConfig('', {}).ok, 'an empty file is the all-defaults config');
});

t.test('loadConfig reports an unreadable file', async (t) => {
  await t.rejects(loadConfig('/nonexistent/upkeep.yml', {}), ConfigInvalid);
});

t.test('check-config', async (t) => {
  t.test('rejects an unknown key, a wrong type and an unset variable, naming each path, exit 1', async (t) => {
    const file = await configFile(t, 'server: { port: nope, authToken: "${UPKEEP_TOKEN}" }\ntargets: { disk: [] }\n');
    const io = capture();
    t.equal(await main(['check-config', '--config', file], io), 1);
    const text = io.stderr.join('\n');
    t.match(text, 'server.port: ');
    t.match(text, 'server.authToken: environment variable UPKEEP_TOKEN is not set and has no default');
    t.match(text, 'targets.disk: unknown key');
  });
  t.test('prints a summary and exits 0', async (t) => {
    const io = capture({ UPKEEP_TOKEN: 's3cret' });
    const file = await configFile(t, 'server: { authToken: "${UPKEEP_TOKEN}" }\ntargets: { disks: [{ path: / }] }\n');
    t.equal(await main(['check-config', '--config', file], io), 0);
    t.match(io.stdout.join('\n'), /config OK[\s\S]*disks=1[\s\S]*bearer token required/);
    t.notMatch(io.stdout.join('\n'), 's3cret');
  });
  t.test('state.postgres: the summary names the host, database and schema, never the password; a bad schema or URL is refused', async (t) => {
    const io = capture({ STATE_PASSWORD: 'st-5ecret-9d1e' });
    const file = await configFile(t, 'state: { postgres: { url: "postgres://upkeep_state:${STATE_PASSWORD}@db.internal:5432/upkeep?sslmode=require" } }\n');
    t.equal(await main(['check-config', '--config', file], io), 0);
    t.match(io.stdout.join('\n'), '  state: PostgreSQL db.internal:5432/upkeep, schema upkeep (shared by replicas)');
    t.notMatch(io.stdout.join('\n'), /5ecret|upkeep_state/);
    const plain = capture();
    t.equal(await main(['check-config', '--config', await configFile(t, 'state: { dir: /var/lib/upkeep }\n')], plain), 0);
    t.match(plain.stdout.join('\n'), '  state: directory /var/lib/upkeep');
    const bad = parseConfig('state: { postgres: { url: "mysql://x@y/z", schema: "Upkeep; drop", timeoutSeconds: 0, leaseSeconds: 2 } }\n', {});
    t.same(bad.ok ? [] : bad.errors, [
      { path: 'state.postgres.url', message: 'must be a postgres:// URL' },
      { path: 'state.postgres.schema', message: 'must be an SQL identifier: lower-case letters, digits and "_", not starting with a digit, at most 63' },
      { path: 'state.postgres.timeoutSeconds', message: 'Too small: expected number to be >0' },
      { path: 'state.postgres.leaseSeconds', message: 'Too small: expected number to be >=3' },
    ]);
    const members = (text: string) => { const parsed = parseConfig(`state: { postgres: { url: "postgres://u@db/upkeep", ${text} } }\n`, {}); return parsed.ok ? parsed.config.state.postgres : parsed.errors; };
    t.match(members(''), { leaseSeconds: 30, memberHeartbeatSeconds: 2, memberLeaseSeconds: 10 }, 'the defaults');
    t.match(members('memberHeartbeatSeconds: 1.5, memberLeaseSeconds: 4.5'), { memberHeartbeatSeconds: 1.5, memberLeaseSeconds: 4.5 }, 'fractions, a lease of three heartbeats');
    t.same(members('memberHeartbeatSeconds: 0.5, memberLeaseSeconds: 4000'), [
      { path: 'state.postgres.memberHeartbeatSeconds', message: 'Too small: expected number to be >=1' },
      { path: 'state.postgres.memberLeaseSeconds', message: 'Too big: expected number to be <=3600' },
    ]);
    t.same(members('memberHeartbeatSeconds: 5'), [
      { path: 'state.postgres.memberLeaseSeconds', message: 'must be at least 3 times state.postgres.memberHeartbeatSeconds, so a replica whose heartbeat is a little late is not taken for gone' },
    ], 'the default lease of 10 s is too short for a 5 s heartbeat');
    const ttl = (text: string) => { const parsed = parseConfig(`remediation: { ${text} }\n`, {}); return parsed.ok ? parsed.config.remediation.redisLockTtlSeconds : parsed.errors; };
    t.equal(ttl(''), 30, 'the Redis lock TTL\'s default');
    t.equal(ttl('redisLockTtlSeconds: 3'), 3);
    t.same([ttl('redisLockTtlSeconds: 2'), ttl('redisLockTtlSeconds: 4.5'), ttl('redisLockTtlSeconds: 7200')], [
      [{ path: 'remediation.redisLockTtlSeconds', message: 'Too small: expected number to be >=3' }],
      [{ path: 'remediation.redisLockTtlSeconds', message: 'Invalid input: expected int, received number' }],
      [{ path: 'remediation.redisLockTtlSeconds', message: 'Too big: expected number to be <=3600' }],
    ]);
    const dry = (text: string) => { const parsed = parseConfig(`remediation: { ${text} }\n`, {}); return parsed.ok ? parsed.config.remediation.dryRunConcurrency : parsed.errors; };
    t.equal(dry(''), 4, 'dry runs at once by default: as many as real runs');
    t.same([dry('dryRunConcurrency: 0'), dry('dryRunConcurrency: 65')], [
      [{ path: 'remediation.dryRunConcurrency', message: 'Too small: expected number to be >=1' }],
      [{ path: 'remediation.dryRunConcurrency', message: 'Too big: expected number to be <=64' }],
    ]);
    const missing = parseConfig('state: { postgres: { schema: upkeep } }\n', {});
    t.same(missing.ok ? [] : missing.errors, [{ path: 'state.postgres.url', message: 'is required' }]);
  });
  t.test('the shipped minimal example is valid', async (t) => {
    const io = capture();
    t.equal(await main(['check-config', '--config', 'examples/minimal.yml'], io), 0);
    t.match(io.stdout.join('\n'), 'backups=1 disks=1 logs=1');
  });
  t.test('cross-checks against the remediations and collectors, in check-config, serve and run alike', async (t) => {
    const file = await configFile(t, [
      'targets: { disks: [{ path: / }] }',
      'collectors: { disabled: [disk] }',
      'remediation: { rules: [{ match: { alertname: A }, remediation: redis.bgsave, params: { target: cache } }] }',
      'schedule: [{ name: s, cron: "0 2 * * *", remediation: postgres.vacum, params: {} }]',
      '',
    ].join('\n'));
    const expected = [
      `${file}: 3 config error(s)`,
      '  collectors.disabled[0]: is not a collector; the collectors are disks, backups, logs, http, postgres, redis, docker',
      '  remediation.rules[0].params.target: names no targets.redis entry',
      '  schedule[0].remediation: unknown remediation (did you mean "postgres.vacuum"?)',
    ].join('\n');
    for (const command of [['check-config'], ['serve'], ['run', 'redis.bgsave']]) {
      const io = capture();
      t.equal(await main([...command, '--config', file], io), 1, command.join(' '));
      t.same(io.stderr, [expected], `${command[0]} refuses with the same messages`);
    }
  });
  t.test('serve --host beyond loopback needs a token', async (t) => {
    const file = await configFile(t, 'targets: { disks: [{ path: / }] }\n');
    const io = capture();
    t.equal(await main(['serve', '--config', file, '--host', '0.0.0.0', '--port', '0'], io), 1);
    t.same(io.stderr, ['--host: server.authToken is empty while the listen address is not loopback (127.0.0.1, ::1, localhost): every POST would be open to the network; set a token or listen on 127.0.0.1']);
  });
  t.test('an unexpected error while loading prints its type, never a stack or the file', async (t) => {
    const file = await configFile(t, 'server: { authToken: "${UPKEEP_TOKEN}" }\n');
    const hostile = new Proxy({}, { get: () => { throw new TypeError('s3cret in a message'); } });
    const io = { ...capture(), env: hostile };
    t.equal(await main(['check-config', '--config', file], io), 1);
    t.same(io.stderr, [`${file}: the config could not be checked (TypeError)`]);
  });
  t.test('the cross-checks of the file and of its names come together: one fix shows every error they find', async (t) => {
    const file = await configFile(t, [
      'collectors: { disabled: [nope] }',
      'remediation: { rules: [{ match: {}, remediation: postgres.vacum }] }',
      'schedule: [{ name: a, cron: "0 2 * * *", remediation: backup.pg_dump, params: { backup: none } }]',
    ].join('\n'));
    const io = capture();
    t.equal(await main(['check-config', '--config', file], io), 1);
    t.same(io.stderr, [[
      `${file}: 4 config error(s)`,
      '  remediation.rules[0].match: is empty, so the rule would match every alert; name at least one label (e.g. alertname)',
      '  collectors.disabled[0]: is not a collector; the collectors are disks, backups, logs, http, postgres, redis, docker',
      '  remediation.rules[0].remediation: unknown remediation (did you mean "postgres.vacuum"?)',
      '  schedule[0].params.backup: names no targets.backups entry',
    ].join('\n')]);
  });
  t.test('usage errors exit 2', async (t) => {
    const io = capture();
    t.equal(await main(['check-config'], io), 2);
    t.match(io.stderr.join('\n'), '--config FILE is required');
    t.equal(await main(['frobnicate'], io), 2);
    t.match(io.stderr.join('\n'), 'unknown command "frobnicate"');
    t.equal(await main(['check-config', '--bogus'], io), 2);
    t.match(io.stderr.at(-1), /^upkeep check-config: unknown option --bogus\nupkeep check-config --config FILE/, "upkeep's words, then the command's own help");
    t.equal(await main(['frobnicate', '--x'], io), 2);
    t.match(io.stderr.at(-1), /^unknown command "frobnicate"\nusage:/, 'an unknown command before its unknown option');
    t.equal(await main(['run', 'x', '--config'], io), 2);
    t.match(io.stderr.at(-1), /^upkeep run: Option '-c, --config <value>' argument missing\nupkeep run REMEDIATION/, 'a missing value: parseArgs says which');
  });
});

t.test('${file:/path} reads a secret from a file (Kubernetes secrets, systemd credentials)', async (t) => {
  const dir = await tempDir(t, 'upkeep-secret-');
  await writeFile(join(dir, 'token'), '12345\n');
  await writeFile(join(dir, 'big'), 'x'.repeat(70_000));
  const parsed = parseConfig(`server: { authToken: "\${file:${dir}/token}" }\ntargets: { redis: [{ name: c, url: "redis://:\${file:${dir}/token}@127.0.0.1:6379" }] }\n`, {});
  t.ok(parsed.ok);
  if (parsed.ok) {
    t.equal(parsed.config.server.authToken, '12345', 'one trailing newline is dropped; a numeric secret stays a string');
    t.equal(parsed.config.targets.redis[0]?.url, 'redis://:12345@127.0.0.1:6379');
  }
  const missing = parseConfig(`server: { authToken: "\${file:${dir}/nope}" }\n`, {});
  t.same(missing.ok ? [] : missing.errors, [{ path: 'server.authToken', message: `cannot read secret file ${dir}/nope (ENOENT)` }]);
  const relative = parseConfig('server: { authToken: "${file:token}" }\n', {});
  t.same(relative.ok ? [] : relative.errors, [{ path: 'server.authToken', message: '${file:token} must name an absolute path' }]);
  const big = parseConfig(`server: { authToken: "\${file:${dir}/big}" }\n`, {});
  t.same(big.ok ? [] : big.errors, [{ path: 'server.authToken', message: `cannot read secret file ${dir}/big (is larger than 65536 bytes)` }]);
});

t.test('${file:${VAR}/name}: the path may hold variables (systemd\'s $CREDENTIALS_DIRECTORY)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'upkeep-credentials-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'token'), 's3cret\n');
  const config = 'server: { authToken: "${file:${CREDENTIALS_DIRECTORY}/token}" }\nstate: { dir: "${STATE_DIRECTORY:-/var/lib/upkeep}" }\n';
  const parsed = parseConfig(config, { CREDENTIALS_DIRECTORY: dir });
  t.ok(parsed.ok);
  if (parsed.ok) t.equal(parsed.config.server.authToken, 's3cret');
  const fallback = parseConfig('server: { authToken: "${file:${NOT_SET:-' + dir + '}/token}" }\n', {});
  t.equal(fallback.ok && fallback.config.server.authToken, 's3cret', 'the default of an unset variable');
  const unset = parseConfig(config, {});
  t.same(unset.ok ? [] : unset.errors, [{ path: 'server.authToken', message: 'environment variable CREDENTIALS_DIRECTORY is not set and has no default' }], 'one error: the file is not read');
  const dollar = parseConfig(`server: { authToken: "\${file:${dir}/a$b}" }\n`, {});
  t.same(dollar.ok ? [] : dollar.errors, [{ path: 'server.authToken', message: `cannot read secret file ${dir}/a$b (ENOENT)` }], 'a lone $ is part of the path');
});

t.test('entries of a list that one name tells apart must have their own', async (t) => {
  const text = `
targets:
  postgres: [{ name: main, url: "postgres://127.0.0.1/a" }, { name: main, url: "postgres://127.0.0.1/b" }]
  redis: [{ name: cache, url: "redis://127.0.0.1:6379" }, { name: cache, url: "redis://127.0.0.1:6380" }]
  disks: [{ path: / }, { path: /var }, { path: / }]
  http: [{ name: self, url: "http://127.0.0.1:9630/healthz" }, { name: other, url: "http://127.0.0.1:9630/readyz" }, { name: self, url: "http://127.0.0.1:9630/nope" }]
  logs: [{ name: app, dir: /var/log }, { name: app, dir: /tmp }]
  files: [{ name: tmp, dir: /tmp }, { name: tmp, dir: /var/tmp }]
  backups: [{ name: db, dir: /a, pattern: "db_*" }, { name: db, dir: /b, pattern: "db_*" }]
  docker: [{ name: local }, { name: local }]
remediation:
  windows: [{ name: nightly, cron: "0 2 * * 1-5", durationMinutes: 60 }, { name: nightly, cron: "0 4 * * 0,6", durationMinutes: 60 }]
  retention: [{ name: old, target: main, database: a, table: t, timestampColumn: at, olderThan: 30 days }, { name: old, target: main, database: a, table: u, timestampColumn: at, olderThan: 30 days }]
schedule:
  - { name: nightly-cleanup, cron: "0 3 * * *", remediation: files.cleanup, params: { name: tmp } }
  - { name: nightly-cleanup, cron: "0 4 * * *", remediation: files.cleanup, params: { name: tmp } }
`;
  const result = parseConfig(text, {});
  t.same(result.ok ? [] : result.errors.map((error) => `${error.path}: ${error.message}`), [
    'targets.postgres[1].name: is also the name of targets.postgres[0]; give each entry its own',
    'targets.redis[1].name: is also the name of targets.redis[0]; give each entry its own',
    'targets.docker[1].name: is also the name of targets.docker[0]; give each entry its own',
    'targets.backups[1].name: is also the name of targets.backups[0]; give each entry its own',
    'targets.disks[2].path: is also the path of targets.disks[0]; give each entry its own',
    'targets.logs[1].name: is also the name of targets.logs[0]; give each entry its own',
    'targets.http[2].name: is also the name of targets.http[0]; give each entry its own',
    'targets.files[1].name: is also the name of targets.files[0]; give each entry its own',
    'remediation.retention[1].name: is also the name of remediation.retention[0]; give each entry its own',
    'schedule[1].name: is also the name of schedule[0]; give each entry its own',
  ], 'one error per repeat, at the repeat; windows may share a name');
  t.ok(parseConfig('targets:\n  logs: [{ name: app, dir: /var/log }]\n  files: [{ name: app, dir: /tmp }]\n  postgres: [{ name: app, url: "postgres://127.0.0.1/a" }]\n', {}).ok,
    'one name in different lists is fine');
});
