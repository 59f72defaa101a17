import t from 'tap';
import { formatValue } from '../../../src/collectors/framework/exposition.js';
import { asStrings, exposition, MAX_VALUE_BYTES, SLICE_BYTES, TextSlices, type FamilyText } from '../../../src/collectors/framework/text.js';

/** Lines written through TextSlices, one family of `count` lines, pausing when slices are full. */
function lines(header: string, line: string, count: number): FamilyText {
  const bytes = Buffer.from(line);
  return {
    *write(out) {
      out.text(header);
      for (let i = 0; i < count; i += 1) {
        out.room(bytes.length);
        out.bytes(bytes);
        if (out.filled) yield;
      }
    },
  };
}

/** Each slice decoded as it comes: its buffer is written into again once the next is asked for. */
async function all(families: readonly FamilyText[]): Promise<string[]> {
  const slices: string[] = [];
  for await (const slice of asStrings(exposition(families))) slices.push(slice);
  return slices;
}

t.test('families are joined as prom-client joins them, in slices that lose nothing', async (t) => {
  const line = '\nsérie{a="ü"} 1';
  const slices = await all([lines('# HELP big x\n# TYPE big gauge', line, 10_000), { text: async () => '# HELP small y\n# TYPE small gauge\nsmall 1' }]);
  t.ok(slices.length > 1, `${slices.length} slices`);
  t.ok(slices.every((slice) => Buffer.byteLength(slice) <= SLICE_BYTES), `no slice is larger than ${SLICE_BYTES} bytes`);
  t.equal(slices.join(''), `# HELP big x\n# TYPE big gauge${line.repeat(10_000)}\n\n# HELP small y\n# TYPE small gauge\nsmall 1\n`);
  const empty = await all([]);
  t.same(empty, ['\n'], 'no families: a lone newline, as prom-client');
});

t.test('a few buffers are reused for the whole exposition', async (t) => {
  const line = '\nseries{table="t"} 12345';
  const buffers = new Set<ArrayBufferLike>();
  let slices = 0;
  let text = '';
  for await (const slice of exposition([lines('# HELP big x', line, 100_000)])) {
    buffers.add(slice.buffer);
    slices += 1;
    text += Buffer.from(slice).toString();
  }
  t.equal(text, `# HELP big x${line.repeat(100_000)}\n`);
  t.ok(slices >= Buffer.byteLength(text) / SLICE_BYTES, `${slices} slices`);
  t.ok(buffers.size <= 3, `${buffers.size} buffers for ${slices} slices`);
});

t.test('a line is never split between slices; one longer than a slice gets a slice of its own', async (t) => {
  const long = `\n${'x'.repeat(100_000)}`;
  const slices = await all([lines('# HELP a x', '\nshort 1', 9000), lines('# HELP b y', long, 2)]);
  const text = slices.join('');
  t.equal(text, `# HELP a x${'\nshort 1'.repeat(9000)}\n\n# HELP b y${long.repeat(2)}\n`);
  for (const slice of slices) t.ok(slice.startsWith('\n') || slice.startsWith('#'), 'each slice starts at a line');
  t.ok(slices.some((slice) => slice.length === long.length), 'the long line in a slice of its own size');
});

t.test('values are written as formatValue writes them, digits of whole numbers without a string', async (t) => {
  const values = [0, -0, 1, 7, 10, 99, 100, 2 ** 31, 2 ** 53 - 1, 2 ** 53, 2 ** 60, 1e21, 123_456_789_012_345,
    0.5, -0.5, -3, 1_700_000_100.25, 3.5e-7, Number.MAX_VALUE, -Number.MAX_VALUE, Number.MIN_VALUE, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NaN];
  const out = new TextSlices();
  for (const value of values) {
    out.room(MAX_VALUE_BYTES + 1);
    out.value(value);
    out.text(' ');
  }
  const written = Array.from(out.end(), (slice) => Buffer.from(slice).toString()).join('');
  t.equal(written, values.map((value) => `${formatValue(value)} `).join(''));
  t.ok(values.every((value) => formatValue(value).length <= MAX_VALUE_BYTES), 'MAX_VALUE_BYTES holds every value');
});
