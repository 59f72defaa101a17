/**
 * Seeded mutations of what clients send upkeep, for the fuzz suites. Every choice comes from one
 * seeded generator, so a failure is reproduced by running the suite again: the same seed gives the
 * same payloads in the same order.
 */
export type Random = () => number;

/** mulberry32: a small, fast, well-spread 32-bit generator. */
export function seeded(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = state;
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4294967296;
  };
}

export function pick<T>(random: Random, items: readonly T[]): T {
  const item = items[Math.floor(random() * items.length)];
  if (item === undefined) throw new Error('pick from an empty list');
  return item;
}

function integer(random: Random, below: number): number {
  return Math.floor(random() * below);
}

/** One request as the fuzzer sends it. */
export interface FuzzRequest {
  readonly what: string;
  readonly path: string;
  readonly body: string;
  /** null: no Content-Type header at all. */
  readonly contentType: string | null;
  /** Whether the bearer token goes with it (a wrong one when 'wrong'). */
  readonly token: 'right' | 'wrong' | 'none';
}

// Text that has broken parsers, shells, SQL and paths before.
export const NASTY_STRINGS: readonly string[] = [
  "orders; DROP TABLE orders; --", "' OR '1'='1", 'orders"; SELECT pg_sleep(10); --', 'public.orders\u0000', '$(touch /tmp/upkeep-fuzz-pwned)',
  '`id`', '| cat /etc/passwd', '../../../../etc/passwd', '..\\..\\windows', '/dev/zero', '%00', '%2e%2e%2f', '{{labels.table}}', '${HOME}',
  '\u202eelbat', '🧹🐘💥', 'ﷺ'.repeat(50), '\ud800', 'a\r\nX-Injected: 1', 'pg_catalog.pg_class', 'information_schema.tables', '', ' ', '\t',
  'NaN', '-1', '1e309', 'null', 'true', '__proto__', 'constructor', 'x'.repeat(5000),
];

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function junk(random: Random, depth = 0): Json {
  const kind = integer(random, depth > 3 ? 5 : 7);
  switch (kind) {
    case 0: return null;
    case 1: return random() < 0.5;
    case 2: return pick(random, [0, -1, 1.5, 1e308, -1e308, 2 ** 53 + 1, Number.MAX_SAFE_INTEGER]);
    case 3: return pick(random, NASTY_STRINGS);
    case 4: return integer(random, 1000);
    case 5: return Array.from({ length: integer(random, 4) }, () => junk(random, depth + 1));
    default: return Object.fromEntries(Array.from({ length: integer(random, 4) }, () => [pick(random, NASTY_STRINGS.filter((text) => text !== '__proto__')), junk(random, depth + 1)]));
  }
}

/** Nesting deep enough to break a recursive walker, within the body limit. */
function deepNesting(random: Random): string {
  const depth = 1000 + integer(random, 100_000);
  return `${'['.repeat(depth)}1${']'.repeat(depth)}`;
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

function asRecord(value: unknown): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('not an object');
  return value as Record<string, unknown>;
}

function alertsOf(payload: Record<string, unknown>): Record<string, unknown>[] {
  const { alerts } = payload;
  if (!Array.isArray(alerts)) throw new Error('no alerts');
  return alerts.map(asRecord);
}

const CONTENT_TYPES: readonly (string | null)[] = [
  null, 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'application/json; charset=latin1', 'application/jsonx', '*/*',
];

/** Turns a JSON text into a request, sometimes with a broken body, content type or token. */
function wrap(random: Random, what: string, path: string, text: string): FuzzRequest {
  const roll = random();
  if (roll < 0.08) return { what: `${what}, truncated`, path, body: text.slice(0, integer(random, text.length)), contentType: 'application/json', token: 'right' };
  if (roll < 0.14) return { what: `${what}, wrong content type`, path, body: text, contentType: pick(random, CONTENT_TYPES), token: 'right' };
  if (roll < 0.18) return { what: `${what}, ${roll < 0.16 ? 'no' : 'a wrong'} token`, path, body: text, contentType: 'application/json', token: roll < 0.16 ? 'none' : 'wrong' };
  return { what, path, body: text, contentType: 'application/json', token: 'right' };
}

/**
 * A mutation of the captured Alertmanager payload: `fingerprint` makes each alert distinct, so a
 * valid one becomes a new run. Returns the request and whether the payload was left valid.
 */
export function mutateWebhook(random: Random, fixture: Record<string, unknown>, fingerprint: string): FuzzRequest {
  const payload = clone(fixture);
  const alerts = alertsOf(payload);
  for (const alert of alerts) alert.fingerprint = fingerprint;
  const [alert] = alerts;
  if (!alert) throw new Error('the fixture has no alert');
  const labels = asRecord(alert.labels);
  const mutation = integer(random, 16);
  let what: string;
  switch (mutation) {
    case 0: {
      const key = pick(random, Object.keys(payload));
      delete payload[key];
      what = `payload without ${key}`;
      break;
    }
    case 1: {
      const key = pick(random, Object.keys(alert));
      delete alert[key];
      what = `alert without ${key}`;
      break;
    }
    case 2: {
      const key = pick(random, [...Object.keys(payload), 'alerts']);
      payload[key] = junk(random);
      what = `payload.${key} retyped`;
      break;
    }
    case 3: {
      const key = pick(random, Object.keys(alert));
      alert[key] = junk(random);
      what = `alert.${key} retyped`;
      break;
    }
    case 4: {
      const size = pick(random, [4096, 4097, 10_000, 100_000, 900_000]);
      labels[pick(random, ['table', 'schema', 'database', 'target', 'extra'])] = 'x'.repeat(size);
      what = `a ${size}-byte label value`;
      break;
    }
    case 5: {
      const size = pick(random, [256, 257, 5000]);
      labels['n'.repeat(size)] = 'v';
      what = `a ${size}-byte label name`;
      break;
    }
    case 6: {
      const count = pick(random, [64, 65, 1000]);
      for (let index = 0; index < count; index += 1) labels[`l${index}`] = String(index);
      what = `${count} extra labels`;
      break;
    }
    case 7: {
      const count = pick(random, [0, 2, 50, 1001, 5000]);
      payload.alerts = Array.from({ length: count }, (_, index) => ({ ...clone(alert), fingerprint: `${fingerprint}-${index}` }));
      what = `${count} alerts`;
      break;
    }
    case 8: {
      labels[pick(random, ['table', 'schema', 'database', 'target'])] = pick(random, NASTY_STRINGS);
      what = 'metacharacters in a label the rule templates';
      break;
    }
    case 9: {
      const target = pick(random, [alert, payload, labels]);
      target[pick(random, ['status', 'version'])] = pick(random, ['FIRING', 'pending', '', 3, null, '5', 'resolved ']);
      what = 'a wrong status or version';
      break;
    }
    case 10: {
      alert.annotations = junk(random);
      labels.nested = 'ok';
      payload.extra = junk(random);
      what = 'nested junk in annotations and an unknown key';
      break;
    }
    case 11: {
      const text = JSON.stringify(payload);
      const poisoned = pick(random, ['"__proto__":{"isAdmin":true},', '"constructor":{"prototype":{"polluted":1}},']);
      return wrap(random, 'a prototype-pollution key', '/alertmanager', text.replace('{"status"', `{${poisoned}"status"`).replace('"labels":{', `"labels":{${poisoned}`));
    }
    case 12:
      return { what: 'deeply nested arrays', path: '/alertmanager', body: JSON.stringify(payload).replace('"annotations":{', `"deep":${deepNesting(random)},"annotations":{`), contentType: 'application/json', token: 'right' };
    case 13:
      return { what: 'not JSON at all', path: '/alertmanager', body: pick(random, ['', 'null', '[]', '"4"', '{', 'version=4&status=firing', '\u0000\u0001\u0002', '{"version":"4"}'.repeat(3)]), contentType: 'application/json', token: 'right' };
    case 14:
      labels[pick(random, ['table', 'target'])] = pick(random, ['🧹🐘💥', '\u202eelbat', 'ordérs', 'таблица']);
      what = 'unicode in a label value';
      break;
    default:
      what = 'the captured payload, unchanged';
  }
  return wrap(random, what, '/alertmanager', JSON.stringify(payload));
}

/** The remediations the manual fuzz may name: all run dry (remediation.dryRun), and none reaches Docker or Redis. */
const NAMES: readonly string[] = [
  'postgres.vacuum', 'postgres.analyze', 'files.cleanup', 'backup.pg_dump', 'nope', '..%2f..%2fetc', '%00', 'postgres.vacuum%20', 'POSTGRES.VACUUM', 'x'.repeat(3000), '🧹',
];

/** A mutation of a valid manual run body for postgres.vacuum or files.cleanup. */
export function mutateManualRun(random: Random): FuzzRequest {
  const bases: Record<string, Json>[] = [
    { params: { target: 'main', database: 'app', table: 'public.orders' }, dryRun: true },
    { params: { name: 'scratch', olderThanHours: 1 }, dryRun: true },
  ];
  const base = clone(pick(random, bases));
  const params = asRecord(base.params);
  let name = typeof params.target === 'string' ? 'postgres.vacuum' : 'files.cleanup';
  let query = '';
  const mutation = integer(random, 13);
  let what: string;
  switch (mutation) {
    case 0:
      name = pick(random, NAMES);
      what = `remediation "${name.slice(0, 20)}"`;
      break;
    case 1: {
      const key = pick(random, Object.keys(params));
      params[key] = junk(random);
      what = `params.${key} retyped`;
      break;
    }
    case 2:
      params[pick(random, Object.keys(params))] = pick(random, NASTY_STRINGS);
      what = 'metacharacters in a param';
      break;
    case 3:
      base.timeoutSeconds = pick(random, [-1, 0, 0.0001, 86400, 86401, 2 ** 31, 1e308, '60', null]);
      what = `timeoutSeconds ${String(base.timeoutSeconds)}`;
      break;
    case 4:
      base[pick(random, ['dryRun', 'params'])] = junk(random);
      what = 'dryRun or params retyped';
      break;
    case 5:
      base[pick(random, ['extra', 'wait', 'run'])] = junk(random);
      what = 'an unknown key';
      break;
    case 6: {
      const count = pick(random, [32, 33, 500]);
      for (let index = 0; index < count; index += 1) params[`p${index}`] = index;
      what = `${count} extra params`;
      break;
    }
    case 7: {
      const size = pick(random, [4000, 4097, 100_000]);
      params[pick(random, ['table', 'name', 'k'.repeat(200)])] = 'y'.repeat(size);
      what = `a ${size}-byte param`;
      break;
    }
    case 8:
      return { what: 'deeply nested params', path: `/remediations/${name}`, body: `{"params":{"table":${deepNesting(random)}}}`, contentType: 'application/json', token: 'right' };
    case 9: {
      const text = JSON.stringify(base).replace('"params":{', '"params":{"__proto__":{"table":"pg_catalog.pg_class"},');
      return wrap(random, 'a __proto__ param', `/remediations/${name}`, text);
    }
    case 10:
      query = pick(random, ['?wait=true', '?wait=maybe', '?wait=true&wait=false', '?x=1', '?wait=' + 'a'.repeat(5000)]);
      what = `query ${query.slice(0, 20)}`;
      break;
    case 11:
      return { what: 'not JSON at all', path: `/remediations/${name}`, body: pick(random, ['', 'null', '[]', '{', 'params=1', '"x"', '0']), contentType: 'application/json', token: 'right' };
    default:
      what = 'a valid body';
  }
  return wrap(random, what, `/remediations/${name}${query}`, JSON.stringify(base));
}
