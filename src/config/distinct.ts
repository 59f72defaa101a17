import type { z } from 'zod';

/**
 * For a list whose entries `key` tells apart: an issue on each entry that repeats an earlier
 * one's. Two `targets.http` entries named `self` both exported `upkeep_collector_up{target="self"}`,
 * so the exposition held the same series twice (Prometheus keeps one, so a failing probe could
 * hide behind a working one); of two `targets.files` entries of one name files.cleanup only ever
 * used the first; of two schedule entries of one name the schedule kept only the last by name (the
 * first's timer ran on, outside its next-run metric and never stopped at shutdown), and ticks are
 * claimed by name, so the two due in one minute ran once between them. Windows may share a name:
 * one window can be several crons, and the name is only shown.
 */
export function distinct<K extends string>(key: K, list: string) {
  return (entries: readonly Readonly<Record<K, string>>[], context: z.RefinementCtx): void => {
    const first = new Map<string, number>();
    entries.forEach((entry, index) => {
      const value = entry[key];
      const earlier = first.get(value);
      if (earlier === undefined) first.set(value, index);
      // Pointed at, not quoted: no config message quotes a value from the file (docs/configuration.md).
      else context.addIssue({ code: 'custom', path: [index, key], message: `is also the ${key} of ${list}[${earlier}]; give each entry its own` });
    });
  };
}
