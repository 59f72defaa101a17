import t from 'tap';
import { identifier } from '../../src/actions/params.js';

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
