import type { z } from 'zod';
import { checkConsistency } from './checks.js';
import { configSchema, type Config } from './schema.js';
import { formatPath, interpolate, type InterpolationError } from './interpolate.js';
import { readFailure, readRegularFile } from './read.js';
import { readYaml } from './yaml.js';

export type ConfigError = InterpolationError;

/** The largest config file upkeep reads: a whole runbook's config is a few KiB. */
export const MAX_CONFIG_BYTES = 1_048_576;
// Enough to fix a broken file in a few passes; a fuzzed file can produce thousands.
const MAX_ERRORS_SHOWN = 50;

export class ConfigInvalid extends Error {
  constructor(readonly file: string, readonly errors: readonly ConfigError[]) {
    const shown = errors.slice(0, MAX_ERRORS_SHOWN).map((e) => `  ${e.path}: ${e.message}`);
    if (errors.length > MAX_ERRORS_SHOWN) shown.push(`  … and ${errors.length - MAX_ERRORS_SHOWN} more`);
    super(`${file}: ${errors.length} config error(s)\n${shown.join('\n')}`);
    this.name = 'ConfigInvalid';
  }
}

export type ParseResult = { ok: true; config: Readonly<Config> } | { ok: false; errors: ConfigError[] };

/** Checks of a config whose shape is valid, beyond checkConsistency's (the CLI's references to remediations and collectors). */
export type MoreChecks = (config: Readonly<Config>) => readonly ConfigError[];

/**
 * Turns YAML text into a validated, frozen config. Pure: the environment is passed in. The
 * cross-checks (checkConsistency, `more`) need a config of the right shape, so they run once the
 * schema passes, all of them together: one fix of the file shows every error they find.
 */
export function parseConfig(text: string, env: Readonly<Record<string, string | undefined>>, more: MoreChecks = () => []): ParseResult {
  const raw = readYaml(text);
  if (!raw.ok) return raw;
  const errors: ConfigError[] = [];
  const expanded = interpolate(raw.value, env, errors);
  const result = configSchema.safeParse(expanded, ZOD_MESSAGES);
  if (!result.success) errors.push(...result.error.issues.flatMap((issue) => describeIssue(issue)));
  if (errors.length > 0 || !result.success) return { ok: false, errors };
  errors.push(...checkConsistency(result.data), ...more(result.data));
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, config: deepFreeze(result.data) };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The file's text: a regular file of at most MAX_CONFIG_BYTES, UTF-8, not binary. */
export function readConfigText(file: string): string {
  let bytes: Buffer;
  try {
    bytes = readRegularFile(file, MAX_CONFIG_BYTES);
  } catch (err) {
    throw new ConfigInvalid(file, [{ path: '(file)', message: `cannot read (${readFailure(err)})` }]);
  }
  if (bytes.includes(0)) throw new ConfigInvalid(file, [{ path: '(file)', message: 'is a binary file (it contains NUL bytes), not YAML text' }]);
  try {
    return utf8.decode(bytes);
  } catch {
    throw new ConfigInvalid(file, [{ path: '(file)', message: 'is not UTF-8 text' }]);
  }
}

export async function loadConfig(file: string, env: Readonly<Record<string, string | undefined>>, more?: MoreChecks): Promise<Readonly<Config>> {
  const result = parseConfig(readConfigText(file), env, more);
  if (!result.ok) throw new ConfigInvalid(file, result.errors);
  return result.config;
}

/** zod says "expected string, received undefined" for a missing key; people say "is required". */
export const ZOD_MESSAGES: z.core.ParseContext<z.core.$ZodIssue> = {
  error: (issue) => (issue.code === 'invalid_type' && issue.input === undefined ? 'is required' : undefined),
};

/** A zod issue as config errors, under `prefix` (e.g. the params of `schedule[0]`). */
export function describeIssue(issue: z.core.$ZodIssue, prefix: readonly PropertyKey[] = []): ConfigError[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({ path: formatPath([...prefix, ...issue.path, key]), message: 'unknown key' }));
  }
  return [{ path: formatPath([...prefix, ...issue.path]), message: issue.message }];
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
