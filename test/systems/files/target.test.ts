import t from 'tap';
import { backupTarget, diskTarget, fileTarget, logTarget } from '../../../src/systems/files/target.js';
import { describeIssues } from '../../../src/zod-issues.js';

t.test('file-system targets: backups, disks, logs and disposable files', async (t) => {
  t.same(backupTarget.parse({ name: 'nightly', dir: '/backups', pattern: 'app_*.sql.gz', source: { target: 'main', database: 'app' } }),
    { name: 'nightly', dir: '/backups', pattern: 'app_*.sql.gz', keepDays: 7, source: { target: 'main', database: 'app' } });
  t.same(diskTarget.parse({ path: '/' }), { path: '/' });
  t.same(logTarget.parse({ name: 'api', dir: '/var/log/api' }), { name: 'api', dir: '/var/log/api', pattern: '*', refreshSeconds: 60 });
  t.same(fileTarget.parse({ name: 'tmp', dir: '/tmp/api' }), { name: 'tmp', dir: '/tmp/api', pattern: '*' });
  const bad = backupTarget.safeParse({ name: 'nightly', dir: '', pattern: 'x', keepDays: 0, extra: 1 });
  t.equal(bad.error && describeIssues(bad.error.issues), 'dir: Too small: expected string to have >=1 characters; keepDays: Too small: expected number to be >0; (root): Unrecognized key: "extra"');
});
