import { resolve } from 'node:path';
import type { z } from 'zod';
import { globToRegExp } from '../systems/files/glob.js';
import type { BackupTarget } from '../systems/files/target.js';

type Entry = Pick<BackupTarget, 'name' | 'dir' | 'pattern' | 'source'>;

/**
 * Names backup.pg_dump gives an entry's dumps (backupFileName in src/actions/backup.ts, which the
 * config layer does not load): the plain file and the directory-format dump of one instant.
 */
export function writtenNames(name: string): readonly [plain: string, directory: string] {
  return [`${name}_20260101_000000.sql.gz`, `${name}_20260101_000000.dir`];
}

/** Only an entry with a source has dumps written by upkeep, so only its file names are known. */
function written(entry: Entry): readonly string[] {
  return entry.source ? writtenNames(entry.name) : [];
}

function catches(pattern: RegExp, names: readonly string[]): boolean {
  return names.some((file) => pattern.test(file));
}

/**
 * A pattern for `entry` that matches its own dumps (in the formats its pattern matched) and none
 * of `others`' (nor is one of their patterns): NAME_2*, else the whole timestamp's shape, which no
 * other name's dumps can take.
 */
function narrower(entry: Entry, others: readonly Entry[]): string | null {
  if (!entry.source) return null;
  const match = globToRegExp(entry.pattern);
  const [plain, directory] = writtenNames(entry.name);
  const both = match.test(plain) && match.test(directory);
  const suffix = both ? '' : match.test(directory) ? '.dir' : '.sql.gz';
  const candidates = [`${entry.name}_2*${suffix}`, `${entry.name}_????????_??????${both ? '{.sql.gz,.dir}' : suffix}`];
  return candidates.find((candidate) => {
    const pattern = globToRegExp(candidate);
    return others.every((other) => other.pattern !== candidate && !catches(pattern, written(other)));
  }) ?? null;
}

function example(entry: Entry, others: readonly Entry[]): string {
  const pattern = narrower(entry, others);
  return pattern === null ? '' : `, e.g. "${pattern}"`;
}

/** What an entry whose pattern reaches another's files does to them. */
function harm(entry: Entry): string {
  return `metrics would count them${entry.source ? ' and its backup.pg_dump delete them once past its keepDays' : ''}`;
}

/**
 * Entries sharing a dir must not list each other's dumps: the listing feeds both the collector and
 * backup.pg_dump's retention, so `app_*.sql.gz` deleted app_archive's dumps past app's keepDays
 * and counted them as app's. A conflict: the same dir once normalized (symlinks not followed), and
 * the same pattern or one matching a dump name the other's backup.pg_dump writes. An entry without
 * a source writes nothing, but its pattern would still count another's dumps, so it conflicts too.
 */
export function backupOverlap(entries: readonly Entry[], context: z.RefinementCtx): void {
  const byDir = new Map<string, Listed[]>();
  entries.forEach((entry, index) => {
    const dir = resolve(entry.dir);
    // A pattern that does not compile has its own issue (the schema's length limit): left out here.
    const match = compiled(entry.pattern);
    if (match === null) return;
    const listed = { entry, index, match, names: written(entry) };
    const group = byDir.get(dir);
    if (group) group.push(listed);
    else byDir.set(dir, [listed]);
  });
  for (const group of byDir.values()) {
    const besides = (self: Listed) => group.filter((other) => other !== self).map((other) => other.entry);
    group.forEach((later, position) => {
      // Its first conflict only, as distinct() names only the first entry repeated.
      for (const earlier of group.slice(0, position)) {
        const issue = conflict(earlier, later, besides);
        if (!issue) continue;
        context.addIssue({ code: 'custom', path: [later.index, issue.key], message: issue.message });
        break;
      }
    });
  }
}

function compiled(pattern: string): RegExp | null {
  try {
    return globToRegExp(pattern);
  } catch {
    return null;
  }
}

interface Listed { entry: Entry; index: number; match: RegExp; names: readonly string[] }

/** Two entries in one dir: the issue at the later, as distinct()'s; the earlier is pointed at, never quoted. */
function conflict(earlier: Listed, later: Listed, besides: (self: Listed) => Entry[]): { key: 'pattern' | 'dir'; message: string } | null {
  // A shared name is distinct()'s to report.
  if (earlier.entry.name === later.entry.name) return null;
  const other = `targets.backups[${earlier.index}]`;
  if (earlier.entry.pattern === later.entry.pattern) {
    const deleted = (earlier.entry.source ?? later.entry.source) ? ' (and a backup.pg_dump of one delete the other\'s once past its keepDays)' : '';
    return { key: 'pattern', message: `is also the pattern of ${other} in the same dir, so both would count the same files${deleted}; give each entry a pattern of its own files${example(later.entry, besides(later))}` };
  }
  if (catches(later.match, earlier.names)) {
    return { key: 'pattern', message: `also matches the files backup.pg_dump writes for ${other} in the same dir, so this entry's ${harm(later.entry)}; narrow it to this entry's own files${example(later.entry, besides(later))}` };
  }
  if (catches(earlier.match, later.names)) {
    return { key: 'dir', message: `is also the dir of ${other}, whose pattern matches the files backup.pg_dump writes for this entry, so ${other}'s ${harm(earlier.entry)}; narrow ${other}.pattern to its own files${example(earlier.entry, besides(earlier))}` };
  }
  return null;
}
