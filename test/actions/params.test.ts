import t from 'tap';
import { count, flag, identifier, progressSeconds } from '../../src/actions/params.js';

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

t.test('an identifier refuses invisible format characters (Unicode Cf), naming the one it found', async (t) => {
  const refusal = (codePoint: string) => `must not contain invisible Unicode format characters (${codePoint}): they make a name display as another`;
  const formats: Array<[string, string]> = [
    ['\u200e', 'U+200E'], ['\u200f', 'U+200F'],
    ['\u202a', 'U+202A'], ['\u202b', 'U+202B'], ['\u202c', 'U+202C'], ['\u202d', 'U+202D'], ['\u202e', 'U+202E'],
    ['\u2066', 'U+2066'], ['\u2067', 'U+2067'], ['\u2068', 'U+2068'], ['\u2069', 'U+2069'],
    ['\u200b', 'U+200B'], ['\u200c', 'U+200C'], ['\u200d', 'U+200D'], ['\u2060', 'U+2060'], ['\ufeff', 'U+FEFF'],
    ['\u00ad', 'U+00AD'], ['\u061c', 'U+061C'], ['\u{e0001}', 'U+E0001'],
  ];
  for (const [character, codePoint] of formats) {
    for (const name of [`ev${character}ents`, `${character}events`, `events${character}`]) {
      t.same(identifier.safeParse(name).error?.issues.map((issue) => issue.message), [refusal(codePoint)], `${codePoint} in ${JSON.stringify(name)}`);
    }
  }
  t.same(identifier.safeParse('a\u202eb\u200bc').error?.issues.map((issue) => issue.message), [refusal('U+202E')], 'the first one is named');
  t.same(identifier.safeParse('a\u0000\u202e').error?.issues.map((issue) => issue.message), ['must not contain control characters or broken Unicode', refusal('U+202E')], 'each kind is said');
  // Visible marks that combine with or vary a letter are not format characters (Mn, not Cf).
  for (const name of ['events', 'café', 'cafe\u0301', '\u2764\ufe0f', 'العربية', 'עברית', '🧹']) t.ok(identifier.safeParse(name).success, JSON.stringify(name));
});

t.test('a flag given as text is read as a boolean; anything else but a boolean is refused', async (t) => {
  const schema = flag(true);
  t.same([schema.parse('true'), schema.parse('false'), schema.parse(false), schema.parse(undefined)], [true, false, false, true]);
  t.equal(schema.safeParse('yes').success, false);
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
