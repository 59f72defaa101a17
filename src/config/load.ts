import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema.js';
import { formatPath, interpolate, type InterpolationError } from './interpolate.js';

export type ConfigError = InterpolationError;

export class ConfigInvalid extends Error {
  constructor(readonly file: string, readonly errors: readonly ConfigError[]) {
    super(`${file}: ${errors.length} config error(s)\n${errors.map((e) => `  ${e.path}: ${e.message}`).join('\n')}`);
    this.name = 'ConfigInvalid';
  }
}

export type ParseResult = { ok: true; config: Readonly<Config> } | { ok: false; errors: ConfigError[] };

/** Turns YAML text into a validated, frozen config. Pure: the environment is passed in. */
export function parseConfig(text: string, env: Readonly<Record<string, string | undefined>>): ParseResult {
  let raw: unknown;
  try {
    // A warning (an unknown tag, a bad directive) is an error too: the config is strict, and the
    // parser would print the offending line, secrets included, to stderr.
    const document = parseDocument(text);
    const problem = document.errors[0] ?? document.warnings[0];
    if (problem) throw problem;
    raw = document.toJS() ?? {};
  } catch (err) {
    return { ok: false, errors: [{ path: '(root)', message: `not valid YAML: ${yamlProblem(err as Error)}` }] };
  }
  const errors: ConfigError[] = [];
  const expanded = interpolate(raw, env, errors);
  const result = configSchema.safeParse(expanded);
  if (!result.success) errors.push(...result.error.issues.flatMap(describeIssue));
  if (errors.length > 0 || !result.success) return { ok: false, errors };
  return { ok: true, config: deepFreeze(result.data) };
}

/**
 * The parser's reason and position ("… at line 2, column 64"), without the excerpt of the
 * offending line it appends: that line may hold a password.
 */
function yamlProblem(err: Error): string {
  const firstLine = err.message.split('\n')[0] ?? '';
  return firstLine.replace(/:$/, '');
}

export async function loadConfig(file: string, env: Readonly<Record<string, string | undefined>>): Promise<Readonly<Config>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigInvalid(file, [{ path: '(file)', message: `cannot read: ${(err as Error).message}` }]);
  }
  const result = parseConfig(text, env);
  if (!result.ok) throw new ConfigInvalid(file, result.errors);
  return result.config;
}

function describeIssue(issue: z.core.$ZodIssue): ConfigError[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({ path: formatPath([...issue.path, key]), message: 'unknown key' }));
  }
  return [{ path: formatPath(issue.path), message: issue.message }];
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
