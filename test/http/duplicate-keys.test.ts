import t from 'tap';
import { duplicateKey } from '../../src/http/duplicate-keys.js';

t.test('a key given twice is found, with where it is', async (t) => {
  const cases: [string, string | null][] = [
    ['{"a":1,"a":2}', 'a'],
    ['{"params":{"keepDays":30,"keepDays":3}}', 'params.keepDays'],
    ['{"alerts":[{"labels":{}},{"labels":{"table":"a","x":"y","table":"b"}}]}', 'alerts[1].labels.table'],
    ['[{"a":1},[{"b":1,"b":1}]]', '[1][0].b'],
    // One name, two texts: JSON.parse reads both as "a".
    ['{"a":1,"\\u0061":2}', 'a'],
    ['{"a\\"b":1,"a\\u0022b":2}', 'a"b'],
    ['{"":1,"":2}', ''],
    // Past 16 keys, and an escaped key after plain ones: each compared another way.
    [`{${Array.from({ length: 30 }, (_, index) => `"k${index % 25}":${index}`).join(',')}}`, 'k0'],
    [`{${Array.from({ length: 20 }, (_, index) => `"k${index}":1`).join(',')},"\\u006b7":1}`, 'k7'],
    ['{"b":1,"a":{"x":1},"\\u0062":2}', 'b'],
    [`{"a":1,"${'k'.repeat(100)}":1,"${'k'.repeat(100)}":2}`, 'k'.repeat(100)],
    // The second of two repeated keys is not reached.
    ['{"x":{"a":1,"a":2},"x":1}', 'x.a'],
  ];
  for (const [text, expected] of cases) t.equal(duplicateKey(text), expected, text);
});

t.test('what only looks like a repeated key is not one', async (t) => {
  const texts = [
    '{}', '[]', '"a"', '1', 'null', '{"a":{}}', '{"a":[]}',
    // The same key in sibling objects, or at another level.
    '{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}',
    // Keys and braces inside string values, and escaped quotes and backslashes.
    '{"a":"{\\"a\\":1,\\"a\\":2}","b":"\\\\","c":"\\\\\\"","d":1}',
    '{"a\\\\":1,"a":2}', '{"a":1,"A":2,"a ":3}',
    `{${Array.from({ length: 40 }, (_, index) => `"k${index}":{"k${index}":1}`).join(',')},"\\u006b":1}`,
    '{"alerts":[{"labels":{"alertname":"X"}},{"labels":{"alertname":"X"}}]}',
    ' { "a" : 1 , "b" : [ 1 , 2 , { "a" : 3 } ] , "c" : { } } ',
  ];
  for (const text of texts) {
    JSON.parse(text);
    t.equal(duplicateKey(text), null, text);
  }
});

t.test('over generated documents: none found in what JSON.stringify writes, and each one added is found where it was put', async (t) => {
  let seed = 7;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const names = ['a', 'b', 'é', 'a"b', 'a\\', '{', '', ',', 'labels'];
  const value = (depth: number): unknown => {
    const pick = random();
    if (depth > 3 || pick < 0.3) return pick < 0.1 ? 'x"],{' : pick < 0.2 ? 1.5e3 : null;
    if (pick < 0.6) return Array.from({ length: Math.floor(random() * 4) }, () => value(depth + 1));
    const object: Record<string, unknown> = {};
    for (let count = Math.floor(random() * 5); count > 0; count -= 1) object[names[Math.floor(random() * names.length)] ?? 'a'] = value(depth + 1);
    return object;
  };
  let planted = 0;
  const wrong: string[] = [];
  for (let round = 0; round < 300; round += 1) {
    const text = JSON.stringify({ top: value(0) });
    if (duplicateKey(text) !== null) wrong.push(`found in ${text}`);
    // Repeat the last key of the document's first object that ends in a plain value: `"k":v}` becomes `"k":v,"k":0}`.
    const match = /"((?:[^"\\]|\\.)*)":(?:null|1500|"x\\"],\{"|\[\]|\{\})\}/.exec(text);
    if (!match) continue;
    const close = match.index + match[0].length - 1;
    const twice = `${text.slice(0, close)},"${match[1] ?? ''}":0${text.slice(close)}`;
    const key = String(JSON.parse(`"${match[1] ?? ''}"`));
    if (!duplicateKey(twice)?.endsWith(key)) wrong.push(`${JSON.stringify(key)} not found in ${twice}`);
    planted += 1;
  }
  t.same(wrong, [], 'none found where there is none, and every planted one found');
  t.ok(planted > 100, `${planted} documents had a key planted twice`);
});
