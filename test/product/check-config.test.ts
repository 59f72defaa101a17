import { execFile } from 'node:child_process';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { upkeep } from './installed.js';

const run = promisify(execFile);
const TOKEN = 'tok-check-config-5d21e8';
const PG_PASSWORD = 'pg-check-config-93b7aa';
const ENV = { UPKEEP_TOKEN: TOKEN, PG_PASSWORD };

/** A valid config (secrets from the environment) with `tail` appended. */
function config(tail: string): string {
  return [
    'server: { host: 127.0.0.1, authToken: "${UPKEEP_TOKEN}" }',
    'targets:',
    '  postgres: [{ name: main, url: "postgres://upkeep:${PG_PASSWORD}@127.0.0.1:5432/app", databases: [app] }]',
    '  backups: [{ name: nightly, dir: /tmp, pattern: "nightly_*.sql.gz", source: { target: main, database: app } }]',
    tail,
    '',
  ].join('\n');
}

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'upkeep-check-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs the installed check-config on FILE and checks what every refusal must be. */
async function refused(t: Test, file: string, expected: string): Promise<void> {
  const result = await upkeep(['check-config', '--config', file], { env: ENV });
  t.equal(result.code, 1, `exit 1: ${result.stderr}`);
  t.equal(result.stdout, '');
  t.match(result.stderr, `${file}: `);
  t.ok(result.stderr.split('\n').includes(`  ${expected}`), `names the path: ${expected}`);
  t.notMatch(result.stderr, /^\s+at /m, 'no stack trace');
  t.notMatch(result.stderr, TOKEN, 'no token');
  t.notMatch(result.stderr, PG_PASSWORD, 'no password');
}

t.test('the installed check-config accepts a valid config and says what it holds', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'upkeep.yml');
  await writeFile(file, config('schedule: [{ name: nightly, cron: "0 2 * * *", remediation: backup.pg_dump, params: { backup: nightly } }]'));
  const result = await upkeep(['check-config', '--config', file], { env: ENV });
  t.equal(result.code, 0, result.stderr);
  t.match(result.stdout, /^config OK\n/);
  t.match(result.stdout, 'schedule entries: 1');
  t.notMatch(result.stdout + result.stderr, TOKEN);
  t.notMatch(result.stdout + result.stderr, PG_PASSWORD);
});

t.test('the installed check-config reads windows and schedule entries in one cron dialect', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'upkeep.yml');
  await writeFile(file, config([
    'remediation: { windows: [{ name: monthly, cron: "0 1 * * 0#1", durationMinutes: 300, timezone: Asia/Tokyo }] }',
    'schedule: [{ name: nightly, cron: "@daily", remediation: backup.pg_dump, params: { backup: nightly } }]',
  ].join('\n')));
  const result = await upkeep(['check-config', '--config', file], { env: ENV });
  t.equal(result.code, 0, result.stderr);
  t.match(result.stdout, 'schedule entries: 1');
});

t.test('the installed check-config exits 1 naming the path of each mistake', async (t) => {
  const dir = await tempDir(t);
  const cases: [string, string, string][] = [
    ['rule-typo', 'remediation: { rules: [{ match: { alertname: PostgresDeadTuplesHigh }, remediation: postgres.vacum, params: { target: "{{labels.target}}" } }] }',
      'remediation.rules[0].remediation: unknown remediation (did you mean "postgres.vacuum"?)'],
    ['schedule-typo', 'schedule: [{ name: nightly, cron: "0 2 * * *", remediation: backup.pgdump, params: { backup: nightly } }]',
      'schedule[0].remediation: unknown remediation (did you mean "backup.pg_dump"?)'],
    ['cron', 'schedule: [{ name: nightly, cron: "0 2 * * 0#6", remediation: backup.pg_dump, params: { backup: nightly } }]',
      'schedule[0].cron: day-of-week: "0#6": the nth weekday must be 1-5, or L for the last'],
    ['window-cron', 'remediation: { windows: [{ name: w, cron: "0 25 * * *", durationMinutes: 60 }] }',
      'remediation.windows[0].cron: hour: "25" is outside 0-23'],
    ['collector', 'collectors: { disabled: [postgress] }',
      'collectors.disabled[0]: is not a collector; the collectors are disks, backups, logs, http, postgres, redis, docker'],
    ['empty-match', 'remediation: { rules: [{ match: {}, remediation: redis.bgsave, params: { target: cache } }] }',
      'remediation.rules[0].match: is empty, so the rule would match every alert; name at least one label (e.g. alertname)'],
    ['param-type', 'schedule: [{ name: nightly, cron: "0 2 * * *", remediation: backup.pg_dump, params: { backup: nightly, keepDays: a week } }]',
      'schedule[0].params.keepDays: Invalid input: expected number, received string'],
    ['target', 'schedule: [{ name: v, cron: "0 2 * * *", remediation: postgres.vacuum, params: { target: mian, database: app } }]',
      'schedule[0].params.target: names no targets.postgres entry (did you mean "main"?)'],
    // Before, both were taken, and the schedule kept its entries by name: the first ran unstopped at shutdown.
    ['same-name', 'schedule: [{ name: nightly, cron: "0 2 * * *", remediation: backup.pg_dump, params: { backup: nightly } }, { name: nightly, cron: "0 3 * * *", remediation: backup.verify, params: { backup: nightly } }]',
      'schedule[1].name: is also the name of schedule[0]; give each entry its own'],
    ['recursive-alias', 'x: &loop\n  again: *loop',
      'x.again: a YAML alias refers to a node that contains it (a recursive alias)'],
    ['bad-url', 'alertmanager: { url: "ftp://admin:${UPKEEP_TOKEN}@am.internal" }',
      'alertmanager.url: must be an http(s) URL'],
    ['yaml-syntax', `server2:\n  token: "${TOKEN}\\q"`,
      '(root): not valid YAML at line 6, column 34: an invalid escape sequence in a double-quoted string'],
  ];
  for (const [name, tail, expected] of cases) {
    const file = join(dir, `${name}.yml`);
    await writeFile(file, config(tail));
    await t.test(name, (t) => refused(t, file, expected));
  }
});

t.test('the installed check-config refuses hostile files without reading them', async (t) => {
  const dir = await tempDir(t);
  const big = join(dir, 'big.yml');
  await writeFile(big, '');
  await truncate(big, 50 * 1024 * 1024);
  await refused(t, big, '(file): cannot read (is larger than 1048576 bytes)');
  const fifo = join(dir, 'fifo.yml');
  await run('mkfifo', [fifo]);
  await refused(t, fifo, '(file): cannot read (is a FIFO, not a regular file)');
  await refused(t, dir, '(file): cannot read (is a directory, not a regular file)');
  await refused(t, '/dev/zero', '(file): cannot read (is a character device, not a regular file)');
  const proto = join(dir, 'proto.yml');
  await writeFile(proto, config('__proto__: { server: { host: 0.0.0.0 } }'));
  await refused(t, proto, '__proto__: this key is not allowed (it names a JavaScript object internal)');
  const bomb = join(dir, 'bomb.yml');
  const levels = ['a: &a [x, x, x, x, x, x, x, x, x]'];
  for (const [name, previous] of [['b', 'a'], ['c', 'b'], ['d', 'c'], ['e', 'd'], ['f', 'e']] as const) levels.push(`${name}: &${name} [${Array(9).fill(`*${previous}`).join(', ')}]`);
  await writeFile(bomb, `${levels.join('\n')}\n`);
  await refused(t, bomb, '(root): too many YAML alias expansions (at most 100): an alias bomb?');
});
