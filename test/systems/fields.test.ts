import t from 'tap';
import { name, parseableUrl, seconds } from '../../src/systems/fields.js';
import { describeIssues } from '../../src/zod-issues.js';

const problem = (result: { success: boolean; error?: { issues: Parameters<typeof describeIssues>[0] } }) => (result.error ? describeIssues(result.error.issues) : null);

t.test('names, seconds and URLs that parse', async (t) => {
  t.equal(name.parse('main-1.db_2'), 'main-1.db_2');
  t.equal(problem(name.safeParse('-main')), '(root): must be letters, digits, ".", "_" or "-"');
  t.equal(seconds.parse(2_000_000), 2_000_000);
  t.equal(problem(seconds.safeParse(2_000_001)), '(root): must be at most 2000000 (about 23 days)');
  t.equal(problem(seconds.safeParse(0)), '(root): Too small: expected number to be >0');
  const url = parseableUrl(/^redis:\/\//, 'must be a redis:// URL');
  t.equal(url.parse('redis://127.0.0.1:6379'), 'redis://127.0.0.1:6379');
  t.equal(problem(url.safeParse('http://x')), '(root): must be a redis:// URL', 'the scheme first, and only it');
  t.equal(problem(url.safeParse('redis://user:p@ss:word@[::1')), '(root): must be a valid URL (percent-encode special characters in the user name and password)', 'never echoing the value');
});
