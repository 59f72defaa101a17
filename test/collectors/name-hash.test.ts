import t from 'tap';
import { hashName, hashNameBytes, spells } from '../../src/collectors/name-hash.js';

/** Names as a DataRow holds them: each field's bytes with others around them. */
function fields(schema: string, table: string): [Buffer, number, number, number, number] {
  const bytes = Buffer.from(`#${schema}####${table}#`, 'utf8');
  const schemaEnd = 1 + Buffer.byteLength(schema);
  return [bytes, 1, schemaEnd, schemaEnd + 4, schemaEnd + 4 + Buffer.byteLength(table)];
}

t.test('a name hashes the same from its strings and from its UTF-8 bytes', async (t) => {
  const names: [string, string][] = [['public', 't'], ['', ''], ['public', ''], ['tâbles', 'x'], ['a', 'été'], ['日本', '表'], ['s', '😀'], ['a"b', 'new\nline']];
  for (const [schema, table] of names) {
    const hash = hashName(schema, table);
    t.equal(hashNameBytes(...fields(schema, table)), hash, `${schema}.${table}`);
    t.ok(Number.isInteger(hash) && hash >= 0 && hash < 2 ** 30, 'a small non-negative integer');
  }
  t.not(hashName('ab', 'c'), hashName('a', 'bc'), 'the split between schema and table counts');
});

t.test('spells compares bytes with a string, ASCII or not', async (t) => {
  const check = (text: string, as: string, expected: boolean) => {
    const bytes = Buffer.from(`[${text}]`, 'utf8');
    t.equal(spells(bytes, 1, bytes.length - 1, as), expected, `${JSON.stringify(text)} ${expected ? 'spells' : 'does not spell'} ${JSON.stringify(as)}`);
  };
  check('public', 'public', true);
  check('public', 'publik', false);
  check('public', 'publics', false);
  check('publics', 'public', false);
  check('', '', true);
  check('tâble', 'tâble', true);
  check('tâble', 'table', false);
  check('table', 'tâble', false);
  check('tâble', 'tâbl', false);
  check('日本', '日本', true);
  check('😀', '😀', true);
});
