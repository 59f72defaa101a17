import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { formatPath } from '../../src/config/interpolate.js';
import { ConfigInvalid, loadConfig, MAX_CONFIG_BYTES, parseConfig } from '../../src/config/load.js';
import { readFailure, readRegularFile } from '../../src/config/read.js';

const run = promisify(execFile);

async function tempDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'upkeep-config-files-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The errors loadConfig reports for a file, as `path: message` lines. */
async function loadErrors(file: string): Promise<string[]> {
  try {
    await loadConfig(file, {});
    return [];
  } catch (err) {
    if (!(err instanceof ConfigInvalid)) throw err;
    return err.errors.map((e) => `${e.path}: ${e.message}`);
  }
}

const errorsOf = (text: string) => {
  const parsed = parseConfig(text, {});
  return parsed.ok ? [] : parsed.errors.map((e) => `${e.path}: ${e.message}`);
};

t.test('files that are not a regular, small, text file are refused before they are read', async (t) => {
  const dir = await tempDir(t);
  await run('mkfifo', [join(dir, 'fifo')]);
  await writeFile(join(dir, 'big.yml'), Buffer.alloc(MAX_CONFIG_BYTES + 1, 'a'));
  await writeFile(join(dir, 'binary.yml'), Buffer.from([0x73, 0x3a, 0x00, 0x01, 0xff]));
  await writeFile(join(dir, 'latin1.yml'), Buffer.from('server: { host: "caf\xe9" }\n', 'latin1'));
  await symlink(join(dir, 'fifo'), join(dir, 'link-to-fifo'));
  t.same(await loadErrors(join(dir, 'fifo')), ['(file): cannot read (is a FIFO, not a regular file)'], 'a FIFO does not block');
  t.same(await loadErrors(join(dir, 'link-to-fifo')), ['(file): cannot read (is a FIFO, not a regular file)'], 'nor a symlink to one');
  t.same(await loadErrors(dir), ['(file): cannot read (is a directory, not a regular file)']);
  t.same(await loadErrors('/dev/zero'), ['(file): cannot read (is a character device, not a regular file)']);
  const socket = createServer().listen(join(dir, 'socket'));
  await once(socket, 'listening');
  t.teardown(() => socket.close());
  t.same(await loadErrors(join(dir, 'socket')), ['(file): cannot read (is a socket, not a regular file)']);
  t.same(await loadErrors(join(dir, 'big.yml')), [`(file): cannot read (is larger than ${MAX_CONFIG_BYTES} bytes)`]);
  t.same(await loadErrors(join(dir, 'binary.yml')), ['(file): is a binary file (it contains NUL bytes), not YAML text']);
  t.same(await loadErrors(join(dir, 'latin1.yml')), ['(file): is not UTF-8 text']);
  t.same(await loadErrors(join(dir, 'missing.yml')), ['(file): cannot read (ENOENT)']);
});

t.test('readRegularFile reads up to its limit and says why it will not', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'ten'), '0123456789');
  t.equal(readRegularFile(join(dir, 'ten'), 10).toString(), '0123456789');
  t.throws(() => readRegularFile(join(dir, 'ten'), 9), { name: 'FileRefused', message: 'is larger than 9 bytes' });
  t.equal(readRegularFile(join(dir, 'ten'), 1_000).length, 10);
  t.equal(readFailure(new Error('odd')), 'unreadable');
});

t.test('/proc files report size 0 but are still read only up to the limit', async (t) => {
  // The kernel says 0 bytes for /proc/self/environ; the bounded read, not the size, stops it.
  t.throws(() => readRegularFile('/proc/self/maps', 8), { message: 'is larger than 8 bytes' });
});

t.test('YAML syntax errors name the line and column, never the text', async (t) => {
  const secret = 'hunter2-s3cret';
  const cases: [string, string][] = [
    [`server:\n  authToken: ${secret}\n  port: [unclosed\n`, '(root): not valid YAML at line 4, column 1: bad indentation'],
    [`server:\n  authToken: "${secret}\\q"\n`, '(root): not valid YAML at line 2, column 29: an invalid escape sequence in a double-quoted string'],
    [`a: 1\na: ${secret}\n`, '(root): not valid YAML at line 2, column 1: a key appears twice in the same mapping'],
    [`a:\n\tb: ${secret}\n`, '(root): not valid YAML at line 2, column 1: tabs are not allowed as indentation'],
    [`a: 1\n---\nb: ${secret}\n`, '(root): not valid YAML at line 2, column 1: more than one YAML document (---); upkeep reads one'],
    [`a: @${secret}\n`, '(root): not valid YAML at line 1, column 4: a plain value cannot start with this character (quote the value)'],
    [`a: "${secret}\n`, '(root): not valid YAML at line 2, column 1: a closing bracket, quote, comma or colon is missing'],
    [`a: [1, 2] ${secret}: x\n`, '(root): not valid YAML at line 1, column 11: unexpected character'],
    [`${'k'.repeat(1030)}: 1\n`, '(root): not valid YAML at line 1, column 1: a key longer than 1024 characters'],
    // An unquoted ${VAR} in flow style: its braces are YAML's.
    [`server: { authToken: \${TOKEN}, port: 1, x: ${secret} }\n`, '(root): not valid YAML at line 1, column 23: unexpected character (inside { } or [ ], quote a ${VAR}: "${VAR}")'],
    [`targets:\n  disks: [{ path: \${DIR:-/} }]\n`, '(root): not valid YAML at line 2, column 20: unexpected character (inside { } or [ ], quote a ${VAR}: "${VAR}")'],
  ];
  for (const [text, expected] of cases) {
    const errors = errorsOf(text);
    t.same(errors.slice(0, 1), [expected], expected);
    t.notMatch(errors.join('\n'), secret);
  }
  t.match(errorsOf('a: { b: [1 }\n')[0], /^\(root\): not valid YAML at line 1, column \d+: /, 'any other code is shown in words');
});

t.test('aliases: recursion, bombs and unresolved names', async (t) => {
  t.same(errorsOf('a: &a [*a]\n'), ['a[0]: a YAML alias refers to a node that contains it (a recursive alias)']);
  t.same(errorsOf('server: &s\n  self: *s\n'), ['server.self: a YAML alias refers to a node that contains it (a recursive alias)']);
  const laughs = ['a: &a [x, x, x, x, x, x, x, x, x]'];
  for (const [name, previous] of [['b', 'a'], ['c', 'b'], ['d', 'c'], ['e', 'd']] as const) laughs.push(`${name}: &${name} [${Array(9).fill(`*${previous}`).join(', ')}]`);
  t.same(errorsOf(`${laughs.join('\n')}\n`), ['(root): too many YAML alias expansions (at most 100): an alias bomb?']);
  t.same(errorsOf('a: *nope\n'), ['(root): a YAML alias (*name) refers to no anchor (&name) defined before it']);
  t.same(errorsOf('%YAML 1.1\n---\na: &a 1\nc: { <<: *a }\n'), ['(root): not valid YAML: it cannot be turned into data'], 'any other failure of the library');
  const shared = parseConfig('x-disk: &disk { path: / }\n', {});
  t.notOk(shared.ok, 'an unknown top-level key is still an error');
  const reused = parseConfig('targets:\n  logs: [&tmp { name: tmp, dir: /tmp }]\n  files: [*tmp]\n', {});
  t.ok(reused.ok, 'an ordinary alias is fine');
});

t.test('nesting, volume and object-internal keys', async (t) => {
  t.same(errorsOf(`a: ${'['.repeat(40)}${']'.repeat(40)}\n`), [`a${'[0]'.repeat(31)}: nested too deeply (at most 32 levels)`]);
  t.same(errorsOf(`a: ${'['.repeat(5000)}${']'.repeat(5000)}\n`).map((e) => e.replace(/column \d+/, 'column N')), ['(root): not valid YAML at line 1, column N: nested too deeply (at most 32 levels)']);
  t.same(errorsOf(`a: [${Array(100_001).fill('0').join(',')}]\n`), ['(root): more than 100000 values']);
  t.same(errorsOf('__proto__: { polluted: true }\nserver: { constructor: 1 }\nremediation: { rules: [{ match: { prototype: x }, remediation: redis.bgsave }] }\n'), [
    '__proto__: this key is not allowed (it names a JavaScript object internal)',
    'server.constructor: this key is not allowed (it names a JavaScript object internal)',
    'remediation.rules[0].match.prototype: this key is not allowed (it names a JavaScript object internal)',
  ]);
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'nothing reached Object.prototype');
});

t.test('paths stay one short line whatever the keys', async (t) => {
  t.equal(formatPath(['remediation', 'rules', 0, 'match', 'app.kubernetes.io/name']), 'remediation.rules[0].match["app.kubernetes.io/name"]');
  t.equal(formatPath(['server', 'a\nb']), 'server["a\\nb"]');
  t.equal(formatPath(['k'.repeat(100)]), `["${'k'.repeat(64)}…"]`);
});

t.test('a file with thousands of errors shows the first 50', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'many.yml');
  await writeFile(file, `targets:\n  disks: [${Array(120).fill('{ path: 1 }').join(', ')}]\n`);
  const err = await loadConfig(file, {}).then(() => null, (error: unknown) => error);
  t.ok(err instanceof ConfigInvalid);
  if (!(err instanceof ConfigInvalid)) return;
  t.equal(err.errors.length, 120);
  const lines = err.message.split('\n');
  t.equal(lines[0], `${file}: 120 config error(s)`);
  t.equal(lines.length, 52);
  t.equal(lines[51], '  … and 70 more');
});
