import type { z } from 'zod';

/** Zod issues as one line, `path: message; path: message`, with `root` naming a problem with the whole value. */
export function describeIssues(issues: readonly z.core.$ZodIssue[], root = '(root)'): string {
  return issues.map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : root}: ${issue.message}`).join('; ');
}
