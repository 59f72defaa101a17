import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { main, type Io } from '../../src/cli.js';
import { parseConfig } from '../../src/config/load.js';
import { tempDir } from '../http/helpers.js';
import { PATH_AT_MESSAGE } from '../../src/config/url-fragment.js';

const MESSAGE = 'must not contain "#": a URL ends its host at "#", so an unencoded "#" or "@" in the password sends part of it to DNS and the logs as the host; percent-encode special characters in the user name and password ("@" as %40, "#" as %23, "/" as %2F, ":" as %3A, "?" as %3F, "%" as %25)';

// The two URLs of the report: each parsed as valid, with a piece of the password as the host.
const TARGET_URL = 'postgres://upk:P@ss#wordHashLEAK@127.0.0.1:34983/app';
const STATE_URL = 'postgres://upkst:a@HostPartLEAK#tailLEAK@127.0.0.1:34983/statedb';
// Every piece either URL could leak (not "word": the message says "password"): none may appear in an error.
const PIECES = ['upk', 'P@ss', 'ss#', 'wordHash', 'LEAK', 'HostPart', 'tail', '127.0.0.1', '34983', 'statedb', '/app'];

function errorsOf(text: string, env: Record<string, string> = {}) {
  const parsed = parseConfig(text, env);
  return parsed.ok ? [] : parsed.errors;
}

function leaked(text: string): string[] {
  return PIECES.filter((piece) => text.includes(piece));
}

t.test('a postgres, redis or state URL with a "#" is refused by path, never echoed', async (t) => {
  const errors = errorsOf([
    'targets:',
    `  postgres: [{ name: main, url: "${TARGET_URL}" }]`,
    '  redis: [{ name: cache, url: "redis://:12#wordHashLEAK@127.0.0.1:34983/0" }]',
    `state: { postgres: { url: "${STATE_URL}" } }`,
    '',
  ].join('\n'));
  t.same(errors, [
    { path: 'state.postgres.url', message: MESSAGE },
    { path: 'targets.postgres[0].url', message: MESSAGE },
    { path: 'targets.redis[0].url', message: MESSAGE },
  ], 'one error each, the fix in it');
  t.same(leaked(JSON.stringify(errors)), [], 'no part of any URL in the errors');
});

t.test('a "#" from the environment or a file secret is refused just the same', async (t) => {
  const dir = await tempDir(t, 'upkeep-url-');
  await writeFile(join(dir, 'password'), 'P@ss#wordHashLEAK');
  const fromFile = errorsOf(`targets: { postgres: [{ name: main, url: "postgres://upk:\${file:${dir}/password}@127.0.0.1:34983/app" }] }\n`);
  t.same(fromFile, [{ path: 'targets.postgres[0].url', message: MESSAGE }]);
  const fromEnv = errorsOf('targets: { redis: [{ name: cache, url: "redis://:${REDIS_PASSWORD}@127.0.0.1:6379" }] }\n', { REDIS_PASSWORD: 'a@HostPartLEAK#tailLEAK' });
  t.same(fromEnv, [{ path: 'targets.redis[0].url', message: MESSAGE }]);
  t.same(leaked(JSON.stringify([fromFile, fromEnv])), []);
});

t.test('a "#" is the one error even where the URL would not parse or has the wrong scheme', async (t) => {
  t.same(errorsOf('targets: { redis: [{ name: cache, url: "redis://:p#wordHashLEAK@127.0.0.1:6379" }] }\n'), [{ path: 'targets.redis[0].url', message: MESSAGE }]);
  t.same(errorsOf('state: { postgres: { url: "mysql://upk:P@ss#wordHashLEAK@127.0.0.1:34983/app" } }\n'), [{ path: 'state.postgres.url', message: MESSAGE }]);
});

t.test('an "@" after the host is refused the same way: an unencoded "/" and "@" in the password', async (t) => {
  t.same(errorsOf('targets: { postgres: [{ name: main, url: "postgres://upk:x@HostPartLEAK/tailLEAK@127.0.0.1:34983/app" }] }\n'), [{ path: 'targets.postgres[0].url', message: PATH_AT_MESSAGE }]);
  t.same(errorsOf('state: { postgres: { url: "postgres://upk:x@HostPartLEAK/tailLEAK@127.0.0.1:34983/statedb" } }\n'), [{ path: 'state.postgres.url', message: PATH_AT_MESSAGE }]);
  t.same(errorsOf('targets: { redis: [{ name: cache, url: "redis://:x@HostPartLEAK/tail@127.0.0.1:6379" }] }\n'), [{ path: 'targets.redis[0].url', message: PATH_AT_MESSAGE }]);
  t.same(errorsOf('targets: { postgres: [{ name: main, url: "postgres://upk@127.0.0.1:34983/app?password=p@ss/word" }] }\n'), [], 'an "@" in the query is a password given there');
  t.same(errorsOf('targets: { postgres: [{ name: main, url: "postgres://upk:x%2Fy%40z@127.0.0.1:34983/app" }] }\n'), [], 'encoded, it is accepted');
});

t.test('the same password percent-encoded is accepted, and means what it says', async (t) => {
  const parsed = parseConfig([
    'targets:',
    '  postgres: [{ name: main, url: "postgres://upk:P%40ss%23wordHashLEAK@127.0.0.1:34983/app" }]',
    '  redis: [{ name: cache, url: "redis://:a%40HostPartLEAK%23tailLEAK@127.0.0.1:6379" }]',
    'state: { postgres: { url: "postgres://upkst:a%40HostPartLEAK%23tailLEAK@127.0.0.1:34983/statedb?sslmode=disable" } }',
    '',
  ].join('\n'), {});
  t.ok(parsed.ok, 'valid');
  if (!parsed.ok) return;
  const url = new URL(parsed.config.targets.postgres[0]?.url ?? '');
  t.same([url.hostname, url.port, decodeURIComponent(url.password)], ['127.0.0.1', '34983', 'P@ss#wordHashLEAK']);
});

t.test('check-config refuses the reported configs without printing any part of the URL', async (t) => {
  const dir = await tempDir(t, 'upkeep-url-');
  const cases: Array<[string, string, string]> = [
    ['target.yml', `targets: { postgres: [{ name: main, url: "${TARGET_URL}" }] }\n`, 'targets.postgres[0].url'],
    ['state.yml', `state: { postgres: { url: "${STATE_URL}" } }\n`, 'state.postgres.url'],
  ];
  for (const [name, text, path] of cases) {
    const file = join(dir, name);
    await writeFile(file, text);
    const stdout: string[] = [];
    const stderr: string[] = [];
    const io: Io = { out: (line) => stdout.push(line), err: (line) => stderr.push(line), env: {} };
    t.equal(await main(['check-config', '--config', file], io), 1, name);
    t.same(stdout, [], `${name}: no "config OK", no summary`);
    t.equal(stderr.join('\n'), `${file}: 1 config error(s)\n  ${path}: ${MESSAGE}`);
    t.same(leaked(stderr.join('\n').replace(file, '')), [], `${name}: nothing of the URL printed`);
  }
});
