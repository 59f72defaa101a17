import { parse, stringify } from 'yaml';

/**
 * Seeded mutations of the shipped example configs, for the config fuzz suite. Secrets sit where
 * secrets belong (the token, passwords in URLs), as `${VAR}`, `${file:/path}` or literal text;
 * mutations may break, retype, wrap or delete them there but never move them into another key
 * or split them, so any secret in upkeep's output is upkeep quoting a secret-bearing value.
 */

export interface Mutant {
  readonly name: string;
  readonly text: string;
  readonly mutations: readonly string[];
}

export interface Source {
  readonly name: string;
  /** The example with every secret as an environment reference. */
  readonly text: string;
}

type Tree = Record<string, unknown> | unknown[];
interface Slot { parent: Tree; key: string | number }

const ODD_STRINGS = ['', ' ', '0', '-1', 'true', 'null', '~', '💥🔥', 'ﾃｽﾄ', '\u202eevil', 'e\u0301', 'a\u0000b', '${NOPE}', '${file:relative}', '{{labels.x}}', '*', '../../etc/passwd', 'NaN'];
const ODD_KEYS = ['colour', 'Targets', 'x-extra', '名前', 'params ', 'a.b', '__proto__', 'constructor', 'prototype', '\u0000', 'k'.repeat(300)];

function pick<T>(next: () => number, items: readonly T[]): T {
  const item = items[Math.floor(next() * items.length)];
  if (item === undefined) throw new Error('pick from an empty list');
  return item;
}

function isTree(value: unknown): value is Tree {
  return value !== null && typeof value === 'object';
}

function slots(root: Tree): Slot[] {
  const found: Slot[] = [];
  const stack: Tree[] = [root];
  for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
    const keys: (string | number)[] = Array.isArray(node) ? node.map((_, index) => index) : Object.keys(node);
    for (const key of keys) {
      found.push({ parent: node, key });
      const child = read({ parent: node, key });
      if (isTree(child)) stack.push(child);
    }
  }
  return found;
}

function read(slot: Slot): unknown {
  return Array.isArray(slot.parent) ? slot.parent[Number(slot.key)] : slot.parent[String(slot.key)];
}

/** Sets own properties only, so `__proto__` becomes a key in the YAML, not a prototype. */
function write(slot: Slot, value: unknown): void {
  if (Array.isArray(slot.parent)) slot.parent[Number(slot.key)] = value;
  else Object.defineProperty(slot.parent, String(slot.key), { value, enumerable: true, writable: true, configurable: true });
}

function remove(slot: Slot): void {
  if (Array.isArray(slot.parent)) slot.parent.splice(Number(slot.key), 1);
  else Reflect.deleteProperty(slot.parent, String(slot.key));
}

function randomValue(next: () => number): unknown {
  const choice = Math.floor(next() * 8);
  if (choice === 0) return Math.floor(next() * 1e6) - 1000;
  if (choice === 1) return next() < 0.5;
  if (choice === 2) return null;
  if (choice === 3) return [];
  if (choice === 4) return {};
  if (choice === 5) return next() * 1e12;
  if (choice === 6) return [pick(next, ODD_STRINGS)];
  return pick(next, ODD_STRINGS);
}

function typo(next: () => number, text: string): string {
  const at = Math.floor(next() * Math.max(1, text.length));
  const edits = [
    () => text.slice(0, at) + text.slice(at + 1),
    () => text.slice(0, at) + pick(next, ['x', '_', '.', 'A']) + text.slice(at),
    () => text.slice(0, at) + text.slice(at + 1, at + 2) + text.slice(at, at + 1) + text.slice(at + 2),
  ];
  return pick(next, edits)();
}

type TreeMutation = (next: () => number, root: Record<string, unknown>, isSecret: (value: unknown) => boolean) => string | null;

function section(root: Record<string, unknown>, ...path: string[]): unknown {
  let node: unknown = root;
  for (const key of path) node = isTree(node) && !Array.isArray(node) ? node[key] : undefined;
  return node;
}

const TREE_MUTATIONS: Record<string, TreeMutation> = {
  deleteKey: (next, root) => {
    const slot = pick(next, slots(root));
    remove(slot);
    return `delete ${String(slot.key)}`;
  },
  changeType: (next, root) => {
    const slot = pick(next, slots(root));
    write(slot, randomValue(next));
    return `retype ${String(slot.key)}`;
  },
  swapValues: (next, root, isSecret) => {
    const candidates = slots(root).filter((slot) => !isSecret(read(slot)));
    if (candidates.length < 2) return null;
    const [a, b] = [pick(next, candidates), pick(next, candidates)];
    const value = read(a);
    write(a, read(b));
    write(b, value);
    return `swap ${String(a.key)} ${String(b.key)}`;
  },
  insertUnknownKey: (next, root) => {
    const objects = [root, ...slots(root).map(read).filter((value): value is Record<string, unknown> => isTree(value) && !Array.isArray(value))];
    const key = pick(next, ODD_KEYS);
    write({ parent: pick(next, objects), key }, randomValue(next));
    return `insert ${key.slice(0, 20)}`;
  },
  hugeString: (next, root, isSecret) => {
    const strings = slots(root).filter((slot) => typeof read(slot) === 'string' && !isSecret(read(slot)));
    if (strings.length === 0) return null;
    const slot = pick(next, strings);
    write(slot, 'x'.repeat(100_000 + Math.floor(next() * 200_000)));
    return `huge ${String(slot.key)}`;
  },
  deepNesting: (next, root) => {
    const slot = pick(next, slots(root));
    let value = read(slot);
    const depth = 20 + Math.floor(next() * 40);
    for (let level = 0; level < depth; level += 1) value = next() < 0.5 ? [value] : { nested: value };
    write(slot, value);
    return `nest ${String(slot.key)} ${depth}`;
  },
  unicode: (next, root, isSecret) => {
    const strings = slots(root).filter((slot) => typeof read(slot) === 'string' && !isSecret(read(slot)));
    if (strings.length === 0) return null;
    const slot = pick(next, strings);
    write(slot, `${String(read(slot))}${pick(next, ['💥', 'ü', '\u202e', '\u0000', '\ud800', 'ß'])}`);
    return `unicode ${String(slot.key)}`;
  },
  protoKey: (next, root) => {
    const objects = [root, ...slots(root).map(read).filter((value): value is Record<string, unknown> => isTree(value) && !Array.isArray(value))];
    const key = pick(next, ['__proto__', 'constructor', 'prototype']);
    write({ parent: pick(next, objects), key }, next() < 0.5 ? { polluted: true, host: '0.0.0.0' } : 'x');
    return `proto ${key}`;
  },
  remediationTypo: (next, root) => {
    const entries = [section(root, 'remediation', 'rules'), section(root, 'schedule')].flatMap((list) => (Array.isArray(list) ? list : []));
    const entry = entries.length > 0 ? pick(next, entries) : null;
    if (!isTree(entry) || Array.isArray(entry) || typeof entry.remediation !== 'string') return null;
    entry.remediation = typo(next, entry.remediation);
    return 'remediation typo';
  },
  paramTypo: (next, root) => {
    const entries = [section(root, 'remediation', 'rules'), section(root, 'schedule')].flatMap((list) => (Array.isArray(list) ? list : []));
    const params = entries.map((entry) => section({ entry }, 'entry', 'params')).filter((value): value is Record<string, unknown> => isTree(value) && !Array.isArray(value));
    if (params.length === 0) return null;
    const chosen = pick(next, params);
    const key = pick(next, [...Object.keys(chosen), 'keepDays']);
    chosen[key] = typeof chosen[key] === 'string' && next() < 0.7 ? typo(next, chosen[key]) : randomValue(next);
    return `param ${key}`;
  },
  emptyMatch: (next, root) => {
    const rules = section(root, 'remediation', 'rules');
    const rule = Array.isArray(rules) && rules.length > 0 ? pick(next, rules) : null;
    if (!isTree(rule) || Array.isArray(rule)) return null;
    rule.match = {};
    return 'empty match';
  },
  disabledCollectors: (next, root) => {
    root.collectors = { disabled: [pick(next, ['disks', 'postgres', 'redis']), pick(next, ODD_STRINGS), typo(next, 'docker')] };
    return 'collectors.disabled';
  },
  openServer: (next, root) => {
    root.server = { host: pick(next, ['0.0.0.0', '::', '10.0.0.7', 'localhost']), authToken: pick(next, ['', '${UNSET_TOKEN:-}']) };
    return 'open server';
  },
  badSecretUrl: (next, root, isSecret) => {
    const urls = slots(root).filter((slot) => slot.key === 'url' && isSecret(read(slot)));
    if (urls.length === 0) return null;
    const slot = pick(next, urls);
    const url = String(read(slot));
    write(slot, pick(next, [url.replace(/^[a-z]+:/, 'mysql:'), url.replace('@', '@@'), `${url} trailing`, [url], { url }]));
    return `bad url ${String(slot.key)}`;
  },
  wrapSecret: (next, root, isSecret) => {
    const secrets = slots(root).filter((slot) => isSecret(read(slot)));
    if (secrets.length === 0) return null;
    const slot = pick(next, secrets);
    write(slot, next() < 0.5 ? [read(slot)] : { value: read(slot) });
    return `wrap secret ${String(slot.key)}`;
  },
};

/** A random position in the text that is not inside a secret (an insertion there could split it). */
type Position = (next: () => number) => number;
type TextMutation = (next: () => number, text: string, position: Position, secrets: readonly string[]) => string;

const TEXT_MUTATIONS: Record<string, TextMutation> = {
  breakYaml: (next, text, position) => {
    const at = position(next);
    return text.slice(0, at) + pick(next, [':', '[', '{', '"', '\t', '\n  - ', '&', '*x', '|', '%', '@']) + text.slice(at);
  },
  truncate: (next, text) => text.slice(0, Math.floor(next() * text.length)),
  // A syntax error on the very line that holds a literal secret: the error must not quote the line.
  breakSecretLine: (next, text, position, secrets) => {
    const lines = text.split('\n');
    const holding = lines.map((line, index) => ({ line, index })).filter(({ line }) => secrets.some((secret) => line.includes(secret)));
    if (holding.length === 0) return TEXT_MUTATIONS.breakYaml?.(next, text, position, secrets) ?? text;
    const { line, index } = pick(next, holding);
    lines[index] = `${line}${pick(next, [': broken', ' ]', ' }', ': [', ' &a &b', ' !!int'])}`;
    return lines.join('\n');
  },
  duplicateLine: (next, text) => {
    const lines = text.split('\n');
    const at = Math.floor(next() * lines.length);
    lines.splice(at, 0, lines[at] ?? '');
    return lines.join('\n');
  },
  aliasBomb: (_next, text) => {
    const levels = ['x-a: &a [x, x, x, x, x, x, x, x, x]'];
    for (const [name, previous] of [['b', 'a'], ['c', 'b'], ['d', 'c'], ['e', 'd'], ['f', 'e'], ['g', 'f']]) levels.push(`x-${name}: &${name} [${Array(9).fill(`*${previous}`).join(', ')}]`);
    return `${levels.join('\n')}\n${text}`;
  },
  recursiveAlias: (next, text) => `${text}\n${pick(next, ['loop: &loop [*loop]', 'loop: &loop\n  self: *loop', 'targets: &t { disks: [*t] }'])}\n`,
  binary: (next, text, position) => {
    const at = position(next);
    return text.slice(0, at) + String.fromCharCode(...Array.from({ length: 8 }, () => Math.floor(next() * 256))) + text.slice(at);
  },
  oversized: (_next, text) => `${text}\n# ${'padding '.repeat(140_000)}\n`,
};

/** The names `mutate` records for its text mutations. */
export const TEXT_MUTATION_NAMES: readonly string[] = Object.keys(TEXT_MUTATIONS);

function positionOutside(text: string, secrets: readonly string[]): Position {
  const inside = (at: number) => secrets.some((secret) => {
    for (let start = text.indexOf(secret); start >= 0; start = text.indexOf(secret, start + 1)) if (at > start && at < start + secret.length) return true;
    return false;
  });
  return (next) => {
    let at = Math.floor(next() * text.length);
    while (inside(at)) at -= 1;
    return at;
  };
}

// Each example is parsed once (with and without literal secrets); every mutant mutates a copy.
const parsedSources = new Map<string, unknown>();

/** Applies one to three tree mutations, then perhaps one to the text. */
export function mutate(next: () => number, source: Source, literalSecrets: ReadonlyMap<string, string>, isSecret: (value: unknown) => boolean, index: number): Mutant {
  const literal = next() < 0.3;
  let text = source.text;
  if (literal) for (const [reference, secret] of literalSecrets) text = text.replaceAll(reference, secret);
  const mutations: string[] = [];
  const count = 1 + Math.floor(next() * 3);
  if (!parsedSources.has(text)) parsedSources.set(text, parse(text));
  const parsed: unknown = structuredClone(parsedSources.get(text));
  const root: Record<string, unknown> = isTree(parsed) && !Array.isArray(parsed) ? parsed : {};
  const treeNames = Object.keys(TREE_MUTATIONS);
  for (let step = 0; step < count; step += 1) {
    const name = pick(next, treeNames);
    const applied = TREE_MUTATIONS[name]?.(next, root, isSecret);
    if (applied) mutations.push(applied);
  }
  text = stringify(root, { lineWidth: 0 });
  if (next() < 0.4) {
    const name = pick(next, Object.keys(TEXT_MUTATIONS));
    const secrets = [...literalSecrets.values()];
    text = TEXT_MUTATIONS[name]?.(next, text, positionOutside(text, secrets), secrets) ?? text;
    mutations.push(name);
  }
  return { name: `${index}-${source.name}${literal ? '-literal' : ''}`, text, mutations };
}
