import { readFile, writeFile } from 'node:fs/promises';
import { parse, stringify } from 'yaml';
import { z } from 'zod';

const rulesFile = z.object({
  groups: z.array(z.object({
    name: z.string(),
    rules: z.array(z.record(z.string(), z.unknown())),
  }).passthrough()),
});

/**
 * The shipped alert rules with every `for:` shortened, so a demo or an end-to-end test sees
 * an alert fire in seconds rather than after the production hold time. Thresholds and
 * expressions are untouched: what fires here fires in production.
 */
export async function shortenedRules(source: string, destination: string, holdFor = '0s'): Promise<string[]> {
  const parsed = rulesFile.parse(parse(await readFile(source, 'utf8')));
  const names: string[] = [];
  for (const group of parsed.groups) {
    for (const rule of group.rules) {
      if (typeof rule.alert !== 'string') continue;
      names.push(rule.alert);
      rule.for = holdFor;
    }
  }
  await writeFile(destination, stringify(parsed));
  return names;
}
