import t from 'tap';
import { postgresTarget } from '../../../src/systems/postgres/target.js';
import { describeIssues } from '../../../src/zod-issues.js';

t.test('a postgres target is defaulted and its filters are checked', async (t) => {
  t.same(postgresTarget.parse({ name: 'main', url: 'postgres://127.0.0.1/app' }), {
    name: 'main', url: 'postgres://127.0.0.1/app', databases: 'auto',
    tables: { include: [], exclude: [], minDeadTuples: 0, limit: 500 },
    sizeRefreshSeconds: 300, xidAgeRefreshSeconds: 60, discoverRefreshSeconds: 300, statements: { enabled: false, limit: 10 },
  });
  const bad = postgresTarget.safeParse({ name: 'main', url: 'mysql://x', databases: [], tables: { include: ['('] }, xidAgeRefreshSeconds: -1 });
  t.equal(bad.error && describeIssues(bad.error.issues), 'url: must be a postgres:// URL; databases: Too small: expected array to have >=1 items; tables.include.0: must be a valid regular expression; xidAgeRefreshSeconds: Too small: expected number to be >=0');
  t.equal(postgresTarget.parse({ name: 'main', url: 'postgres://127.0.0.1/app', xidAgeRefreshSeconds: 0 }).xidAgeRefreshSeconds, 0, '0: every scrape');
});
