import t from 'tap';
import { ownedBy, ownerOf, targetKey } from '../../../src/collectors/framework/assignment.js';

const TARGETS = Array.from({ length: 300 }, (_unused, index) => targetKey('http', `service-${index}`));
const MEMBERS = ['host-a/101/0a1b2c3d', 'host-b/102/4e5f6a7b', 'host-c/103/8c9d0e1f'];

t.test('every target has exactly one owner, the same whatever order the members are listed in', async (t) => {
  const shares = MEMBERS.map((member) => ownedBy(member, TARGETS, MEMBERS));
  t.equal(shares.flat().length, TARGETS.length, 'the shares add up to every target');
  t.same(new Set(shares.flat()), new Set(TARGETS), 'and no target is in two shares');
  const reversed = [...MEMBERS].reverse();
  for (const target of TARGETS) t.equal(ownerOf(target, reversed), ownerOf(target, MEMBERS));
  // sha256 spreads 300 targets over three members close to a third each (these figures are fixed by the hash).
  t.ok(shares.every((share) => share.length > 70 && share.length < 130), `balanced: ${shares.map((share) => share.length).join(', ')}`);
});

t.test('when a member leaves only its targets move, and when one joins it only takes targets', async (t) => {
  const before = new Map(TARGETS.map((target) => [target, ownerOf(target, MEMBERS)]));
  const gone = MEMBERS[2] ?? '';
  const remaining = MEMBERS.slice(0, 2);
  let moved = 0;
  for (const target of TARGETS) {
    const owner = ownerOf(target, remaining);
    if (before.get(target) === gone) {
      moved += 1;
      t.not(owner, gone);
    } else {
      t.equal(owner, before.get(target), `${target} stays where it was`);
    }
  }
  t.equal(moved, ownedBy(gone, TARGETS, MEMBERS).length);
  const joined = [...MEMBERS, 'host-d/104/2a3b4c5d'];
  for (const target of TARGETS) {
    const owner = ownerOf(target, joined);
    t.ok(owner === before.get(target) || owner === 'host-d/104/2a3b4c5d', `${target} stays or goes to the newcomer`);
  }
});

t.test('no members, no owner; one member owns everything', async (t) => {
  t.equal(ownerOf('http/a', []), undefined);
  t.same(ownedBy('solo', TARGETS, ['solo']), TARGETS);
});

t.test('a target key names its collector, so two collectors\' targets of one name are two targets', async (t) => {
  t.equal(targetKey('redis', 'main'), 'redis/main');
  t.not(targetKey('redis', 'main'), targetKey('postgres', 'main'));
});
