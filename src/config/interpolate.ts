import { parse as parseYamlScalar } from 'yaml';

export interface InterpolationError { path: string; message: string }

const REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
const WHOLE_REFERENCE = /^\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}$/;

export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(root)' : out;
}

/**
 * Replaces ${VAR} and ${VAR:-default} in every string of a parsed YAML tree.
 * A value that is one whole reference is re-read as a YAML scalar, so `port: ${PORT:-9630}`
 * becomes the number 9630 while `url: "postgres://${HOST}/db"` stays a string.
 * Substitution happens after parsing so a variable's content can never change the document's shape.
 */
export function interpolate(
  node: unknown,
  env: Readonly<Record<string, string | undefined>>,
  errors: InterpolationError[],
  path: PropertyKey[] = [],
): unknown {
  if (typeof node === 'string') return interpolateString(node, env, errors, path);
  if (Array.isArray(node)) return node.map((item, index) => interpolate(item, env, errors, [...path, index]));
  if (node !== null && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(node)) out[key] = interpolate(value, env, errors, [...path, key]);
    return out;
  }
  return node;
}

function interpolateString(
  text: string,
  env: Readonly<Record<string, string | undefined>>,
  errors: InterpolationError[],
  path: PropertyKey[],
): unknown {
  if (!text.includes('${')) return text;
  const replaced = text.replace(REFERENCE, (_whole, name: string, fallback: string | undefined) => {
    const value = env[name];
    if (value !== undefined && value !== '') return value;
    if (fallback !== undefined) return fallback;
    errors.push({ path: formatPath(path), message: `environment variable ${name} is not set and has no default` });
    return '';
  });
  if (!WHOLE_REFERENCE.test(text)) return replaced;
  const scalar: unknown = parseYamlScalar(replaced);
  return typeof scalar === 'number' || typeof scalar === 'boolean' ? scalar : replaced;
}
