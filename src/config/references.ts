import { z } from 'zod';
import { formatPath } from './interpolate.js';
import { describeIssue, ZOD_MESSAGES, type ConfigError } from './load.js';
import type { Config } from './schema.js';
import { isTemplated } from './template.js';
import { didYouMean, unknownNameHint } from '../names.js';
import { sameTable } from '../systems/postgres/sql.js';

/**
 * Cross-checks that need the registries: the remediations (name and params schema) and the
 * collector names. The CLI passes them in, so the config layer never imports the engine.
 */
export interface KnownRemediation {
  readonly name: string;
  readonly params: z.ZodType;
}

export interface Registries {
  readonly remediations: readonly KnownRemediation[];
  readonly collectors: readonly string[];
}

type Params = Readonly<Record<string, string | number | boolean>>;
type Path = readonly PropertyKey[];

interface NamedList {
  readonly label: string;
  readonly names: readonly string[];
}

const names = (list: readonly { name: string }[]): string[] => list.map((entry) => entry.name);

/**
 * How actions name the objects they act on: in an action of family F (`postgres.vacuum` is F =
 * postgres), `target` is a `targets.F` entry, `backup` a `targets.backups` entry, `name` a
 * `targets.logs` (logs.*) or `targets.files` (files.*, which also takes a log directory) entry,
 * and `policy` a `remediation.retention` policy.
 */
function referencedList(config: Readonly<Config>, family: string, param: string): NamedList | null {
  const { targets } = config;
  if (param === 'target') {
    if (family === 'postgres') return { label: 'targets.postgres', names: names(targets.postgres) };
    if (family === 'redis') return { label: 'targets.redis', names: names(targets.redis) };
    if (family === 'docker') return { label: 'targets.docker', names: names(targets.docker) };
  }
  if (param === 'backup') return { label: 'targets.backups', names: names(targets.backups) };
  if (param === 'name' && family === 'logs') return { label: 'targets.logs', names: names(targets.logs) };
  if (param === 'name' && family === 'files') return { label: 'targets.files', names: names(targets.files) };
  if (param === 'policy') return { label: 'remediation.retention', names: names(config.remediation.retention) };
  return null;
}

/** Literal names in params must exist; a templated one is checked against the config when the alert fills it. */
function checkNames(config: Readonly<Config>, remediation: string, params: Params, skip: ReadonlySet<string>, prefix: Path): ConfigError[] {
  const family = remediation.split('.')[0] ?? '';
  const errors: ConfigError[] = [];
  const literal = (key: string): string | null => {
    const value = params[key];
    return typeof value === 'string' && !skip.has(key) ? value : null;
  };
  for (const key of Object.keys(params)) {
    const value = literal(key);
    const list = referencedList(config, family, key);
    if (value === null || list === null) continue;
    if (!list.names.includes(value)) errors.push({ path: formatPath([...prefix, key]), message: `names no ${list.label} entry${didYouMean(value, list.names)}` });
  }
  const backup = literal('backup');
  const entry = config.targets.backups.find((candidate) => candidate.name === backup);
  if (family === 'backup' && entry && !entry.source) {
    errors.push({ path: formatPath([...prefix, 'backup']), message: `names a targets.backups entry without source { target, database }, which ${remediation} needs` });
  }
  const target = config.targets.postgres.find((candidate) => candidate.name === literal('target'));
  const database = literal('database');
  if (family === 'postgres' && target && database !== null && target.databases !== 'auto' && !target.databases.includes(database)) {
    errors.push({ path: formatPath([...prefix, 'database']), message: 'is not in that target\'s databases list' });
  }
  // redis.expire_keys acts only on a declared pattern: a schedule or rule naming another was
  // "config OK", and every run of it rejected.
  const redis = config.targets.redis.find((candidate) => candidate.name === literal('target'));
  const pattern = literal('pattern');
  if (remediation === 'redis.expire_keys' && redis && pattern !== null && !redis.keyPatterns.includes(pattern)) {
    errors.push({ path: formatPath([...prefix, 'pattern']), message: 'is not in that target\'s keyPatterns; declare it there to allow redis.expire_keys on it' });
  }
  // postgres.retention deletes from its policy's table: a target, database or table beside the
  // policy that are not its own were "config OK", and every run of the entry refused.
  const policy = config.remediation.retention.find((candidate) => candidate.name === literal('policy'));
  if (remediation === 'postgres.retention' && policy) {
    const own = { target: policy.target, database: policy.database, table: policy.table };
    for (const [key, value] of Object.entries(own)) {
      const given = literal(key);
      const differs = given !== null && (key === 'table' ? !sameTable(value, given) : given !== value);
      if (differs) errors.push({ path: formatPath([...prefix, key]), message: `is not retention policy ${JSON.stringify(policy.name)}'s ${key} (${JSON.stringify(value)}): the policy decides what is deleted; leave it out` });
    }
  }
  return errors;
}

/** Params with no placeholder: the remediation's own schema decides, exactly as it will at run time. */
function parseWhole(schema: z.ZodType, params: Params, prefix: Path): { errors: ConfigError[]; badKeys: Set<string> } {
  const result = schema.safeParse(params, ZOD_MESSAGES);
  if (result.success) return { errors: [], badKeys: new Set() };
  return {
    errors: result.error.issues.flatMap((issue) => describeIssue(issue, prefix)),
    badKeys: new Set(result.error.issues.map((issue) => String(issue.path[0] ?? ''))),
  };
}

/**
 * Some params are templated: each literal one is parsed against its own field, unknown keys and
 * missing required ones are reported, and rules across fields wait for the alert's values.
 */
function parseLiterals(schema: z.ZodType, params: Params, templated: ReadonlySet<string>, prefix: Path): { errors: ConfigError[]; badKeys: Set<string> } {
  const errors: ConfigError[] = [];
  const badKeys = new Set<string>();
  // A remediation's params schema is built on first use (z.lazy): its object is inside.
  const object = schema instanceof z.ZodLazy ? schema._zod.innerType : schema;
  if (!(object instanceof z.ZodObject)) return { errors, badKeys };
  const shape: Readonly<Record<string, z.core.$ZodType>> = object.shape;
  const fail = (key: string, found: ConfigError[]) => {
    errors.push(...found);
    badKeys.add(key);
  };
  for (const [key, value] of Object.entries(params)) {
    const field = shape[key];
    if (!field) fail(key, [{ path: formatPath([...prefix, key]), message: 'unknown key' }]);
    if (!field || templated.has(key)) continue;
    const result = z.safeParse(field, value, ZOD_MESSAGES);
    if (!result.success) fail(key, result.error.issues.flatMap((issue) => describeIssue(issue, [...prefix, key])));
  }
  for (const [key, field] of Object.entries(shape)) {
    const result = Object.hasOwn(params, key) ? null : z.safeParse(field, undefined, ZOD_MESSAGES);
    if (result && !result.success) fail(key, result.error.issues.flatMap((issue) => describeIssue(issue, [...prefix, key])));
  }
  return { errors, badKeys };
}

function checkInvocation(config: Readonly<Config>, registries: Registries, prefix: Path, remediation: string, params: Params, fromAlert: boolean): ConfigError[] {
  const action = registries.remediations.find((candidate) => candidate.name === remediation);
  if (!action) {
    const known = registries.remediations.map((candidate) => candidate.name);
    return [{ path: formatPath([...prefix, 'remediation']), message: `unknown remediation${unknownNameHint(remediation, known, 'remediations')}` }];
  }
  const templated = new Set(Object.keys(params).filter((key) => isTemplated(params[key])));
  if (!fromAlert && templated.size > 0) {
    return [...templated].map((key) => ({ path: formatPath([...prefix, 'params', key]), message: '{{labels.…}} is filled from an alert\'s labels, and a schedule entry has no alert' }));
  }
  const paramsPath = [...prefix, 'params'];
  const parsed = templated.size === 0 ? parseWhole(action.params, params, paramsPath) : parseLiterals(action.params, params, templated, paramsPath);
  return [...parsed.errors, ...checkNames(config, remediation, params, new Set([...templated, ...parsed.badKeys]), paramsPath)];
}

/**
 * Everything about rules, schedule entries and disabled collectors that can be proved before
 * anything runs. Each error names its path; no message quotes the offending value (it could be
 * a secret pasted in the wrong place), only the known names it should have been.
 */
export function checkReferences(config: Readonly<Config>, registries: Registries): ConfigError[] {
  const errors: ConfigError[] = [];
  config.collectors.disabled.forEach((name, index) => {
    if (!registries.collectors.includes(name)) {
      errors.push({ path: `collectors.disabled[${index}]`, message: `is not a collector; the collectors are ${registries.collectors.join(', ')}` });
    }
  });
  config.remediation.rules.forEach((rule, index) => {
    errors.push(...checkInvocation(config, registries, ['remediation', 'rules', index], rule.remediation, rule.params, true));
  });
  config.schedule.forEach((entry, index) => {
    errors.push(...checkInvocation(config, registries, ['schedule', index], entry.remediation, entry.params, false));
  });
  return errors;
}
