import t from 'tap';
import { DataRowFields, float8 } from '../../../src/systems/postgres/data-row.js';
import { random } from '../../fixtures/random.js';

/** A DataRow message of text fields (null for NULL). */
function dataRow(fields: readonly (string | null)[]): Buffer {
  const parts = fields.map((field) => {
    const length = Buffer.alloc(4);
    if (field === null) {
      length.writeInt32BE(-1);
      return length;
    }
    const text = Buffer.from(field, 'utf8');
    length.writeInt32BE(text.length);
    return Buffer.concat([length, text]);
  });
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(7);
  head.write('D', 0, 'latin1');
  head.writeUInt32BE(4 + 2 + body.length, 1);
  head.writeInt16BE(fields.length, 5);
  return Buffer.concat([head, body]);
}

/** The next field as text, or null for NULL. */
function text(fields: DataRowFields, bytes: Buffer): string | null {
  const start = fields.field();
  return start < 0 ? null : bytes.toString('utf8', start, fields.end);
}

function read(text: string): number {
  const bytes = Buffer.from(`xx${text}yy`, 'latin1');
  return float8(bytes, 2, 2 + text.length);
}


t.test('a float8 read from its bytes is the number Number() makes of its text', async (t) => {
  const next = random(5);
  const texts = ['0', '-0', '1', '42', '9007199254740991', '9007199254740992', '9007199254740993', '18446744073709551615',
    '1733052345.123456', '-1733052345.123456', '0.1', '0.3', '0.000001', '123.4560', '5.', '.5', '1e+15', '1.5e-05', '-2.5e+300',
    '1.7976931348623157e+308', '5e-324', '0.1234567890123456789012', '1.00000000000000000000001', 'NaN', 'Infinity', '-Infinity'];
  // Whole counters, epochs with microseconds, and any double as its shortest text (PostgreSQL's float8 output).
  for (let i = 0; i < 2_000; i += 1) {
    texts.push(String(Math.floor(next() * 2 ** 53)));
    texts.push((1_600_000_000 + Math.floor(next() * 1e8) + Math.floor(next() * 1e6) / 1e6).toString());
    texts.push(((next() - 0.5) * 10 ** Math.floor(next() * 40 - 20)).toString());
  }
  const wrong = texts.filter((text) => !Object.is(read(text), Number(text)));
  t.same(wrong, [], `all ${texts.length} texts read as Number() reads them`);
  for (const text of ['', '-', 'abc', '1.2.3', ' 1', '1 ', '0x10', '+1', '1e', '--1', 'nan', '-NaN']) {
    t.throws(() => read(text), { message: 'expected a number, got text' }, `${JSON.stringify(text)} is not a float8`);
  }
});

t.test('fields are read in order, NULLs reported, and a short or foreign message refused', async (t) => {
  const fields = new DataRowFields();
  const row = dataRow(['public', 'tâble', '12', null, '1.5']);
  const bytes = Buffer.concat([Buffer.from('junk'), row, Buffer.from('more')]);
  t.equal(fields.open(bytes, 4, 4 + row.length), 5, 'the field count');
  t.equal(text(fields, bytes), 'public');
  t.equal(text(fields, bytes), 'tâble', 'text is UTF-8');
  t.equal(fields.number(), 12);
  t.equal(fields.wasNull, false);
  t.ok(Number.isNaN(fields.number()), 'NULL reads as NaN');
  t.equal(fields.wasNull, true);
  t.equal(fields.number(), 1.5);
  t.throws(() => fields.number(), { message: 'DataRow message ends before its fields' }, 'no field past the last');
  fields.open(row, 0, row.length);
  fields.field();
  t.equal(text(fields, row), 'tâble');
  t.equal(fields.number(), 12);
  t.equal(text(fields, row), null, 'NULL text');
  t.equal(fields.wasNull, true);

  const cut = row.subarray(0, row.length - 2);
  fields.open(cut, 0, cut.length);
  for (let i = 0; i < 4; i += 1) fields.field();
  t.throws(() => fields.field(), { message: 'DataRow message ends before its fields' }, 'a field longer than the message');
  const negative = dataRow(['x']);
  negative.writeInt32BE(-2, 7);
  fields.open(negative, 0, negative.length);
  t.throws(() => fields.field(), { message: 'DataRow message ends before its fields' }, 'a length under -1');
  t.throws(() => fields.open(Buffer.from('C\0\0\0\x0bSELECT 1\0', 'latin1'), 0, 12), { message: 'not a DataRow message' });
  t.throws(() => fields.open(row, 0, 6), { message: 'not a DataRow message' }, 'too short for a field count');
});
