import { parseDocument, type ErrorCode, type YAMLError } from 'yaml';
import { formatPath, type InterpolationError as ConfigError } from './interpolate.js';

/**
 * Limits on what a config document may expand to. A config is a few levels deep and a few
 * hundred values; these bounds stop alias bombs and pathological nesting long before they cost
 * memory or stack, and a real config never comes near them.
 */
export const MAX_ALIAS_EXPANSIONS = 100;
export const MAX_DEPTH = 32;
export const MAX_VALUES = 100_000;

// Keys that would reach JavaScript object internals if they were ever copied into an object.
const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

// The library's own messages may quote the source line (and a secret in it): only the code is used.
const SYNTAX: Partial<Record<ErrorCode, string>> = {
  BAD_DQ_ESCAPE: 'an invalid escape sequence in a double-quoted string',
  BAD_INDENT: 'bad indentation',
  BAD_SCALAR_START: 'a plain value cannot start with this character (quote the value)',
  DUPLICATE_KEY: 'a key appears twice in the same mapping',
  KEY_OVER_1024_CHARS: 'a key longer than 1024 characters',
  MISSING_CHAR: 'a closing bracket, quote, comma or colon is missing',
  MULTIPLE_DOCS: 'more than one YAML document (---); upkeep reads one',
  RESOURCE_EXHAUSTION: `nested too deeply (at most ${MAX_DEPTH} levels)`,
  TAB_AS_INDENT: 'tabs are not allowed as indentation',
  TAG_RESOLVE_FAILED: 'an unknown tag (!name); upkeep reads plain YAML',
  UNEXPECTED_TOKEN: 'unexpected character',
};

export type YamlResult = { ok: true; value: unknown } | { ok: false; errors: ConfigError[] };

function syntaxError(error: YAMLError, text: string): ConfigError {
  const what = SYNTAX[error.code] ?? error.code.toLowerCase().replaceAll('_', ' ');
  const at = error.linePos?.[0];
  return { path: '(root)', message: `not valid YAML${at ? ` at line ${at.line}, column ${at.col}` : ''}: ${what}${unquotedReference(error, text)}` };
}

/**
 * `port: ${PORT}` is plain YAML, but inside `{ }` or `[ ]` the braces of an unquoted `${PORT}` are
 * YAML's own, and the parser stops at them with "unexpected character": the commonest mistake in
 * a config written in flow style. Looked for around the error, never quoted.
 */
function unquotedReference(error: YAMLError, text: string): string {
  const [start, end] = error.pos;
  const near = text.slice(Math.max(0, start - 2), Math.min(text.length, end + 1));
  return near.includes('${') ? ' (inside { } or [ ], quote a ${VAR}: "${VAR}")' : '';
}

function conversionError(err: unknown): ConfigError {
  const text = err instanceof Error ? err.message : '';
  let message = 'not valid YAML: it cannot be turned into data';
  if (text.startsWith('Excessive alias count')) message = `too many YAML alias expansions (at most ${MAX_ALIAS_EXPANSIONS}): an alias bomb?`;
  else if (text.startsWith('Unresolved alias')) message = 'a YAML alias (*name) refers to no anchor (&name) defined before it';
  return { path: '(root)', message };
}

/** Parses one YAML document into plain data, or says why not without quoting the text. */
export function readYaml(text: string): YamlResult {
  let value: unknown;
  try {
    // logLevel 'error': the library's warnings go to process.emitWarning and may quote the text.
    const document = parseDocument(text, { uniqueKeys: true, logLevel: 'error' });
    // A warning (an unknown tag such as `!vault`) is an error too: the config is strict, and
    // a value the parser could not read as written must not be used as some other value.
    const first = document.errors[0] ?? document.warnings[0];
    if (first) return { ok: false, errors: [syntaxError(first, text)] };
    value = document.toJS({ maxAliasCount: MAX_ALIAS_EXPANSIONS }) ?? {};
  } catch (err) {
    return { ok: false, errors: [conversionError(err)] };
  }
  const errors = checkShape(value);
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value };
}

/**
 * Walks the parsed tree once before anything else touches it: a recursive alias (a cycle), depth
 * past MAX_DEPTH, more than MAX_VALUES values and object-internal keys are errors. The recursion
 * stops at MAX_DEPTH, so the walk itself cannot exhaust the stack.
 */
function checkShape(root: unknown): ConfigError[] {
  const errors: ConfigError[] = [];
  const ancestors = new Set<object>();
  let values = 0;
  const visit = (node: unknown, path: PropertyKey[]): void => {
    values += 1;
    if (values === MAX_VALUES + 1) errors.push({ path: '(root)', message: `more than ${MAX_VALUES} values` });
    if (values > MAX_VALUES || node === null || typeof node !== 'object') return;
    if (ancestors.has(node)) {
      errors.push({ path: formatPath(path), message: 'a YAML alias refers to a node that contains it (a recursive alias)' });
      return;
    }
    if (path.length >= MAX_DEPTH) {
      errors.push({ path: formatPath(path), message: `nested too deeply (at most ${MAX_DEPTH} levels)` });
      return;
    }
    ancestors.add(node);
    const entries: [PropertyKey, unknown][] = Array.isArray(node) ? [...node.entries()] : Object.entries(node);
    for (const [key, child] of entries) {
      if (typeof key === 'string' && FORBIDDEN_KEYS.has(key)) errors.push({ path: formatPath([...path, key]), message: 'this key is not allowed (it names a JavaScript object internal)' });
      else visit(child, [...path, key]);
    }
    ancestors.delete(node);
  };
  visit(root, []);
  return errors;
}
