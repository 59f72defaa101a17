import t from 'tap';
import { matchingRules, templateParams } from '../../src/triggers/rules.js';
import { testConfig } from '../http/helpers.js';

t.test('rules match every label and template params from labels', async (t) => {
  const rules = testConfig({ remediation: { rules: [
    { match: { alertname: 'A' }, remediation: 'x', params: { table: '{{labels.schema}}.{{ labels.table }}', n: 3, flag: true } },
    { match: { alertname: 'A', severity: 'critical' }, remediation: 'y' },
  ] } }).remediation.rules;
  t.same(matchingRules(rules, { alertname: 'A', severity: 'warning' }).map((match) => match.index), [0]);
  t.same(matchingRules(rules, { alertname: 'A', severity: 'critical' }).map((match) => match.index), [0, 1]);
  t.same(matchingRules(rules, { alertname: 'B' }), []);
  t.same(templateParams(rules[0]!.params, { schema: 'public', table: 'x; DROP TABLE y' }), { table: 'public.x; DROP TABLE y', n: 3, flag: true }, 'label text is copied, never interpreted');
  t.throws(() => templateParams({ table: '{{labels.table}}' }, {}), /param "table" needs label "table"/);
  t.same(templateParams({ text: '{{labels.a}}{{labels.a}}' }, { a: '{{labels.b}}', b: 'no' }), { text: '{{labels.b}}{{labels.b}}' }, 'substituted text is not templated again');
});
