import t from 'tap';
import { count, identifier, progressSeconds } from '../../src/actions/params.js';

t.test('an identifier from outside refuses what no system could take as a name', async (t) => {
  for (const name of ['public.orders', 'таблица', 'ordérs', '🧹', 'a b', "it's"]) t.ok(identifier.safeParse(name).success, JSON.stringify(name));
  for (const [name, message] of [
    ['', 'must not be empty'],
    ['x'.repeat(256), 'is too long'],
    ['public.orders\u0000', 'must not contain control characters or broken Unicode'],
    ['a\r\nb', 'must not contain control characters or broken Unicode'],
    ['del\u007f', 'must not contain control characters or broken Unicode'],
    ['\ud800', 'must not contain control characters or broken Unicode'],
    ['x\udc00y', 'must not contain control characters or broken Unicode'],
  ] as const) {
    const result = identifier.safeParse(name);
    t.equal(result.error?.issues[0]?.message, message, JSON.stringify(name.slice(0, 20)));
  }
});

t.test('a count given as text is read as a number, so a refusal is about the number', async (t) => {
  const schema = count();
  t.equal(schema.parse('30'), 30);
  t.equal(schema.parse(30), 30);
  const message = (value: unknown) => { const result = schema.safeParse(value); return result.success ? 'accepted' : result.error.issues.map((issue) => issue.message).join('; '); };
  t.match(message('-5'), /^Too small: expected number to be >=0$/, '-5 is a number too small, not a string');
  t.equal(message('1.5'), 'Invalid input: expected int, received number', '1.5 is not whole');
  t.match(message('abc'), /expected number, received string/, 'text that is no number stays a string');
  t.match(message(' 5'), /expected number, received string/, 'nor is text with a space');
});

t.test('progressSeconds stays within what a timer holds: a day at most', async (t) => {
  const schema = progressSeconds();
  t.equal(schema.parse(undefined), 10, 'default');
  t.equal(schema.parse('86400'), 86_400);
  for (const value of [0, 86_401, 3_000_000, Number.MAX_SAFE_INTEGER]) {
    t.equal(schema.safeParse(value).error?.issues[0]?.message, 'must be 1 to 86400 (a day)', String(value));
  }
});
