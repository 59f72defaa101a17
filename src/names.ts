/**
 * "Did you mean": the known name nearest to one that is not known. For config errors, alert names
 * and `upkeep run`.
 */

/** Edit distance, for "did you mean". Inputs are short names; anything long gets no suggestion. */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

const MAX_SUGGESTED_LENGTH = 64;

/** The known name closest to a typo (or the one it is the last part of: `vacuum`), if any is close. */
export function nearestName(given: string, known: readonly string[]): string | null {
  if (given.length > MAX_SUGGESTED_LENGTH) return null;
  // Two edits, fewer for short names: "q" is not a typo of "p".
  const maxDistance = Math.min(2, Math.floor(given.length / 2));
  const lower = given.toLowerCase();
  const suffixed = known.find((name) => name.toLowerCase().endsWith(`.${lower}`));
  if (suffixed) return suffixed;
  let best: { name: string; distance: number } | null = null;
  for (const name of known) {
    const d = distance(lower, name.toLowerCase());
    if (d <= maxDistance && (best === null || d < best.distance)) best = { name, distance: d };
  }
  return best?.name ?? null;
}

/** ` (did you mean "NAME"?)` for a close typo, else nothing. */
export function didYouMean(given: string, known: readonly string[]): string {
  const near = nearestName(given, known);
  return near === null ? '' : ` (did you mean "${near}"?)`;
}

/** ` (did you mean "NAME"?)` for a close typo, else `; the KIND are A, B, C`. */
export function unknownNameHint(given: string, known: readonly string[], kind: string): string {
  return didYouMean(given, known) || `; the ${kind} are ${known.join(', ')}`;
}
