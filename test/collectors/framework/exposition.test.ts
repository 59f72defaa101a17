import t from 'tap';
import { escapeHelp, escapeLabelValue, formatValue, labelText, exposition } from '../../../src/collectors/framework/exposition.js';

t.test('values are written as prom-client writes them', async (t) => {
  t.equal(formatValue(Number.NaN), 'Nan');
  t.equal(formatValue(Number.POSITIVE_INFINITY), '+Inf');
  t.equal(formatValue(Number.NEGATIVE_INFINITY), '-Inf');
  t.equal(formatValue(-0.5), '-0.5');
  t.equal(formatValue(1e21), '1e+21');
});

t.test('label values escape backslash, newline and quote; HELP keeps quotes', async (t) => {
  t.equal(escapeLabelValue('a\\b\n"c"'), 'a\\\\b\\n\\"c\\"');
  t.equal(escapeHelp('a\\b\n"c"'), 'a\\\\b\\n"c"');
  t.equal(labelText({ b: '1', a: 'x"y' }), 'b="1",a="x\\"y"');
  t.equal(labelText({}), '');
});

t.test('families are joined as prom-client joins them, in slices that lose nothing', async (t) => {
  const line = '\nsérie{a="ü"} 1';
  function* big(): Generator<string> {
    yield '# HELP big x\n# TYPE big gauge';
    for (let i = 0; i < 10_000; i += 1) yield line;
  }
  const slices: string[] = [];
  for await (const slice of exposition([big(), async () => '# HELP small y\n# TYPE small gauge\nsmall 1'])) slices.push(slice.toString('utf8'));
  t.ok(slices.length > 1, `${slices.length} slices`);
  t.equal(slices.join(''), `# HELP big x\n# TYPE big gauge${line.repeat(10_000)}\n\n# HELP small y\n# TYPE small gauge\nsmall 1\n`);
  const empty: string[] = [];
  for await (const slice of exposition([])) empty.push(slice.toString('utf8'));
  t.same(empty, ['\n'], 'no families: a lone newline, as prom-client');
});
