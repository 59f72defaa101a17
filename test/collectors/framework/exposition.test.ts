import t from 'tap';
import { escapeHelp, escapeLabelValue, formatValue, labelText } from '../../../src/collectors/framework/exposition.js';

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
