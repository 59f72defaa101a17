import { nodeCrypto } from '../../lazy.js';

/**
 * Rendezvous (highest-random-weight) hashing: each target goes to the member whose hash of
 * (target, member) is highest. Every replica computes the same owner from the same member list,
 * with no coordination; when a member leaves, only its targets move (each to the member that
 * ranked second for it), and when one joins it takes about 1/n of the targets from the others.
 */
export function ownerOf(target: string, members: readonly string[]): string | undefined {
  let owner: string | undefined;
  let best = '';
  for (const member of members) {
    // The whole digest, compared as hex: two members never tie, so every replica picks the same one.
    const weight = weightOf(target, member);
    if (weight > best) {
      owner = member;
      best = weight;
    }
  }
  return owner;
}

/** The targets (of `targets`) that `self` owns among `members`. */
export function ownedBy(self: string, targets: readonly string[], members: readonly string[]): string[] {
  return targets.filter((target) => ownerOf(target, members) === self);
}

/** A target's name for the hashing: the collector and its target name, unique across collectors. */
export function targetKey(collector: string, target: string): string {
  return `${collector}/${target}`;
}

function weightOf(target: string, member: string): string {
  // The NUL separates the two, so ("a/b", "c") and ("a", "b/c") never hash the same text.
  return nodeCrypto().createHash('sha256').update(`${target}\0${member}`).digest('hex');
}
