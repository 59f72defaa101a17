import t from 'tap';
import { stringify } from 'yaml';
import { isLoopback, openToNetwork } from '../../src/config/checks.js';
import { parseConfig } from '../../src/config/load.js';

const errorsOf = (raw: Record<string, unknown>, env: Record<string, string> = {}) => {
  const parsed = parseConfig(stringify(raw), env);
  return parsed.ok ? [] : parsed.errors;
};

const OPEN = 'is empty while the listen address is not loopback (127.0.0.1, ::1, localhost): every POST would be open to the network; set a token or listen on 127.0.0.1';

t.test('loopback addresses', async (t) => {
  for (const host of ['127.0.0.1', '127.8.9.10', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', 'localhost', 'LOCALHOST']) t.ok(isLoopback(host), host);
  for (const host of ['0.0.0.0', '::', '10.1.2.3', '192.168.0.1', 'db.internal', '128.0.0.1', '']) t.notOk(isLoopback(host), host);
});

t.test('an empty or missing token while listening beyond loopback is an error', async (t) => {
  t.equal(openToNetwork('127.0.0.1', undefined), null);
  t.equal(openToNetwork('0.0.0.0', 'tok'), null);
  t.equal(openToNetwork('0.0.0.0', ''), OPEN);
  t.same(errorsOf({ server: { host: '0.0.0.0', authToken: '${UPKEEP_TOKEN:-}' } }), [{ path: 'server.authToken', message: OPEN }], '${VAR:-} with VAR unset');
  t.same(errorsOf({ server: { host: '::' } }), [{ path: 'server.authToken', message: OPEN }], 'no token at all');
  t.same(errorsOf({ server: { host: '0.0.0.0', authToken: '${UPKEEP_TOKEN:-}' } }, { UPKEEP_TOKEN: 'tok-1' }), []);
  t.same(errorsOf({ server: { host: 'localhost' } }), []);
});

t.test('a token no Authorization header can carry (a NUL, a newline) is an error, never quoted', async (t) => {
  const message = 'must not hold control characters (a NUL, a newline): no Authorization header can carry them';
  t.same(errorsOf({ server: { authToken: '${UPKEEP_TOKEN}' } }, { UPKEEP_TOKEN: 'tok\u0000en' }).map((error) => [error.path, error.message]), [['server.authToken', message]]);
  t.same(errorsOf({ server: { authToken: '${UPKEEP_TOKEN}' } }, { UPKEEP_TOKEN: 'two\nlines' }).map((error) => [error.path, error.message]), [['server.authToken', message]]);
  t.same(errorsOf({ server: { authToken: '${UPKEEP_TOKEN}' } }, { UPKEEP_TOKEN: 'a passphrase with spaces, é' }), [], 'spaces and UTF-8 are fine');
});

t.test('a rule with an empty match is an error', async (t) => {
  t.same(errorsOf({ remediation: { rules: [
    { match: { alertname: 'A' }, remediation: 'redis.bgsave' },
    { match: {}, remediation: 'redis.bgsave' },
  ] } }), [{ path: 'remediation.rules[1].match', message: 'is empty, so the rule would match every alert; name at least one label (e.g. alertname)' }]);
});

t.test('retention policies and backup sources name a postgres target and a database it watches', async (t) => {
  const targets = { postgres: [{ name: 'main', url: 'postgres://127.0.0.1/app', databases: ['app'] }, { name: 'any', url: 'postgres://127.0.0.1/x' }] };
  const policy = { name: 'p', table: 't', timestampColumn: 'ts', olderThan: '30 days' };
  t.same(errorsOf({
    targets: {
      ...targets,
      backups: [
        { name: 'a', dir: '/tmp/a', pattern: '*', source: { target: 'mian', database: 'app' } },
        { name: 'b', dir: '/tmp/b', pattern: '*', source: { target: 'main', database: 'other' } },
        { name: 'c', dir: '/tmp/c', pattern: '*', source: { target: 'any', database: 'anything' } },
        { name: 'd', dir: '/tmp/d', pattern: '*' },
      ],
    },
    remediation: { retention: [
      { ...policy, target: 'main', database: 'app' },
      { ...policy, name: 'q', target: 'replica', database: 'app' },
      { ...policy, name: 'r', target: 'main', database: 'other' },
    ] },
  }), [
    { path: 'remediation.retention[1].target', message: 'names no targets.postgres entry' },
    { path: 'remediation.retention[2].database', message: 'is not in that target\'s databases list' },
    { path: 'targets.backups[0].source.target', message: 'names no targets.postgres entry' },
    { path: 'targets.backups[1].source.database', message: 'is not in that target\'s databases list' },
  ]);
});

t.test('a missing key is "required"', async (t) => {
  t.same(errorsOf({ targets: { postgres: [{ name: 'main' }] } }), [{ path: 'targets.postgres[0].url', message: 'is required' }]);
});
