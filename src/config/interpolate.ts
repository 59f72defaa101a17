import { isAbsolute } from 'node:path';
import { parse as parseYamlScalar } from 'yaml';
import { readFailure, readRegularFile } from './read.js';

export interface InterpolationError { path: string; message: string }

/** Reads a `${file:/path}` reference: a Kubernetes secret volume, a systemd credential. */
export type FileReader = (path: string) => string;

// A secret is a token or a password, not a document: a bigger file is a mistake in the path.
const MAX_SECRET_FILE_BYTES = 65_536;

export const readSecretFile: FileReader = (path) => {
  const content = readRegularFile(path, MAX_SECRET_FILE_BYTES);
  // Files written by `echo` or editors end with a newline that is not part of the secret.
  return content.toString('utf8').replace(/\r?\n$/, '');
};

// A file path may itself hold ${VAR} or ${VAR:-default}: systemd's credentials live under
// $CREDENTIALS_DIRECTORY, so a config says "${file:${CREDENTIALS_DIRECTORY}/token}".
const VARIABLE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^{}]*))?\}/g;
const FILE_PATH = String.raw`(?:[^{}$]|\$(?!\{)|\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^{}]*)?\})+`;
const REFERENCE = new RegExp(String.raw`\$\{(?:file:(${FILE_PATH})|([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?)\}`, 'g');
const WHOLE_REFERENCE = new RegExp(String.raw`^\$\{(?:file:${FILE_PATH}|[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?)\}$`);

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const MAX_KEY_SHOWN = 64;

/**
 * `targets.postgres[0].url`. A key that is not a plain word (a label name with dots, a key with a
 * newline, a 1 MB key) is shown quoted and cut short, so a path is always one short line.
 */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) {
    const key = String(part);
    if (typeof part === 'number') out += `[${part}]`;
    else if (PLAIN_KEY.test(key) && key.length <= MAX_KEY_SHOWN) out += out === '' ? key : `.${key}`;
    else out += `[${JSON.stringify(key.length > MAX_KEY_SHOWN ? `${key.slice(0, MAX_KEY_SHOWN)}…` : key)}]`;
  }
  return out === '' ? '(root)' : out;
}

/**
 * Replaces ${VAR}, ${VAR:-default} and ${file:/path} in every string of a parsed YAML tree.
 * A value that is one whole reference is re-read as a YAML scalar, so `port: ${PORT:-9630}`
 * becomes the number 9630 while `url: "postgres://${HOST}/db"` stays a string.
 * Substitution happens after parsing so a variable's content can never change the document's shape.
 */
export function interpolate(
  node: unknown,
  env: Readonly<Record<string, string | undefined>>,
  errors: InterpolationError[],
  path: PropertyKey[] = [],
  readFile: FileReader = readSecretFile,
): unknown {
  if (typeof node === 'string') return interpolateString(node, env, errors, path, readFile);
  if (Array.isArray(node)) return node.map((item, index) => interpolate(item, env, errors, [...path, index], readFile));
  if (node !== null && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(node)) out[key] = interpolate(value, env, errors, [...path, key], readFile);
    return out;
  }
  return node;
}

function interpolateString(
  text: string,
  env: Readonly<Record<string, string | undefined>>,
  errors: InterpolationError[],
  path: PropertyKey[],
  readFile: FileReader,
): unknown {
  if (!text.includes('${')) return text;
  const replaced = text.replace(REFERENCE, (_whole, file: string | undefined, name: string, fallback: string | undefined) => {
    if (file === undefined) return variable(name, fallback, env, errors, path);
    const before = errors.length;
    const filePath = file.replace(VARIABLE, (_inner, innerName: string, innerFallback: string | undefined) => variable(innerName, innerFallback, env, errors, path));
    // An unset variable already named the problem; reading what is left of the path would add a misleading one.
    return errors.length > before ? '' : fileValue(filePath, path, errors, readFile);
  });
  // A secret read from a file stays a string even when it looks like a number.
  if (!WHOLE_REFERENCE.test(text) || text.startsWith('${file:')) return replaced;
  return asNumberOrBoolean(replaced);
}

/** `9630` and `true` become a number and a boolean; anything else, even text YAML cannot read (`"a`), stays a string. */
function asNumberOrBoolean(text: string): unknown {
  let scalar: unknown;
  try {
    scalar = parseYamlScalar(text);
  } catch {
    return text;
  }
  return typeof scalar === 'number' || typeof scalar === 'boolean' ? scalar : text;
}

function variable(
  name: string,
  fallback: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
  errors: InterpolationError[],
  path: PropertyKey[],
): string {
  const value = env[name];
  if (value !== undefined && value !== '') return value;
  if (fallback !== undefined) return fallback;
  errors.push({ path: formatPath(path), message: `environment variable ${name} is not set and has no default` });
  return '';
}

function fileValue(file: string, path: PropertyKey[], errors: InterpolationError[], readFile: FileReader): string {
  if (!isAbsolute(file)) {
    errors.push({ path: formatPath(path), message: `\${file:${file}} must name an absolute path` });
    return '';
  }
  try {
    return readFile(file);
  } catch (err) {
    // Name the file and the reason, never any of its content.
    errors.push({ path: formatPath(path), message: `cannot read secret file ${file} (${readFailure(err)})` });
    return '';
  }
}
