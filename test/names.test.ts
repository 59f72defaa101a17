import t from 'tap';
import { nearestName, unknownNameHint } from '../src/names.js';

t.test('nearestName: a close typo or the last part of a name, never a far or long one', async (t) => {
  const known = ['postgres.vacuum', 'redis.bgsave', 'p'];
  t.equal(nearestName('postgres.vacumm', known), 'postgres.vacuum');
  t.equal(nearestName('BGSAVE', known), 'redis.bgsave');
  t.equal(nearestName('q', known), null, 'one letter is not a typo of another');
  t.equal(nearestName('postgres.analyze', known), null);
  t.equal(nearestName('x'.repeat(100), ['x'.repeat(99)]), null);
});

t.test('unknownNameHint: the nearest name, else every name', async (t) => {
  const known = ['files.cleanup', 'backup.pg_dump'];
  t.equal(unknownNameHint('file.cleanup', known, 'remediations'), ' (did you mean "files.cleanup"?)');
  t.equal(unknownNameHint('nope', known, 'remediations'), '; the remediations are files.cleanup, backup.pg_dump');
});
