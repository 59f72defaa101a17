import type { Redis } from 'ioredis';
import { z } from 'zod';
import { count, identifier } from './params.js';
import { redisLock, requireRedisTarget } from './redis-target.js';
import { PartialWork, type Action, type PlanStep } from './contract.js';
import type { Config } from '../config/schema.js';
import { ValidationError } from '../errors.js';
import { onFirstUse } from '../lazy-schema.js';

// Redis refuses an EXPIRE whose milliseconds overflow ("invalid expire time") or that is not an
// integer it can read (1e+20): the run failed at its first batch, counted by the circuit breaker,
// instead of being refused. A TTL past a century is no TTL anyway.
const MAX_TTL_SECONDS = 100 * 365 * 86_400;
const ttlSeconds = () => count().refine((seconds) => seconds > 0, 'must be positive').refine((seconds) => seconds <= MAX_TTL_SECONDS, `must be at most ${MAX_TTL_SECONDS} (100 years)`);

const expireParams = onFirstUse(() => z.strictObject({
  target: identifier,
  pattern: identifier,
  mode: z.enum(['unlink', 'expire']).default('unlink'),
  when: z.enum(['always', 'no-ttl', 'ttl-over']).default('always'),
  ttlOverSeconds: ttlSeconds().optional(),
  expireSeconds: ttlSeconds().optional(),
  /** SCAN COUNT and the most keys one UNLINK (or one script) touches: the longest Redis is busy for us at once. */
  batchSize: count().refine((size) => size >= 1 && size <= 10_000, 'must be 1 to 10000').default(1000),
}).superRefine((params, issues) => {
  if (params.when === 'ttl-over' && params.ttlOverSeconds === undefined) {
    issues.addIssue({ code: 'custom', path: ['ttlOverSeconds'], message: 'required when when is "ttl-over"' });
  }
  if (params.mode === 'expire' && params.expireSeconds === undefined) {
    issues.addIssue({ code: 'custom', path: ['expireSeconds'], message: 'required when mode is "expire"' });
  }
}));
export type ExpireParams = z.infer<typeof expireParams>;

/**
 * Does a key with this PTTL (ms; -1 no expiry, -2 gone) get acted on? `ttl-over` covers keys that
 * have an expiry longer than N seconds, as in the runbook's `ttl > 604800` (a key without TTL is
 * `no-ttl`). In expire mode a key is never given a longer life than it already has.
 */
export function meetsCondition(params: ExpireParams, pttlMs: number): boolean {
  if (pttlMs === -2) return false;
  const shortens = params.mode !== 'expire' || pttlMs === -1 || pttlMs > (params.expireSeconds ?? 0) * 1000;
  if (!shortens) return false;
  if (params.when === 'no-ttl') return pttlMs === -1;
  if (params.when === 'ttl-over') return pttlMs > (params.ttlOverSeconds ?? 0) * 1000;
  return true;
}

function needsTtl(params: ExpireParams): boolean {
  return params.when !== 'always' || params.mode === 'expire';
}

// One script per batch instead of one pipelined command per key: ioredis spends about 16 us of
// CPU (much of it garbage) on each pipelined command, so a pipeline of PTTLs made a 200,000-key
// cleanup CPU-bound in upkeep. A script stays one batch long: no command of a cleanup of
// 200,000 keys took over 5 ms (bench/expire-keys.ts, SLOWLOG). The scripts touch only the keys
// they are given, which the ACL's key patterns still check.
const PTTL_EACH = "local out = {} for i, key in ipairs(KEYS) do out[i] = redis.call('PTTL', key) end return out";
const EXPIRE_EACH = "local changed = 0 for _, key in ipairs(KEYS) do changed = changed + redis.call('EXPIRE', key, ARGV[1]) end return {changed}";

/** A script's reply: exactly `length` integers, or an error naming the command. */
export function integers(reply: unknown, length: number, command: string): number[] {
  const values: unknown[] = Array.isArray(reply) ? reply : [];
  if (values.length !== length || !values.every((value): value is number => typeof value === 'number')) {
    throw new Error(`unexpected reply to the ${command} script from Redis`);
  }
  return values;
}

/** Each SCAN batch of keys (as Buffers, so binary key names survive), already filtered by the condition. */
async function* matchingBatches(redis: Redis, params: ExpireParams, signal?: AbortSignal): AsyncGenerator<{ scanned: number; keys: Buffer[] }> {
  let cursor = '0';
  do {
    if (signal?.aborted) throw new Error('stopped at the run deadline; keys processed so far stay processed, run again to continue');
    const [next, keys] = await redis.scanBuffer(cursor, 'MATCH', params.pattern, 'COUNT', params.batchSize);
    cursor = next.toString();
    if (keys.length === 0) continue;
    if (!needsTtl(params)) {
      yield { scanned: keys.length, keys };
      continue;
    }
    const pttls = integers(await redis.eval(PTTL_EACH, keys.length, ...keys), keys.length, 'PTTL');
    yield { scanned: keys.length, keys: keys.filter((_key, index) => meetsCondition(params, pttls[index] ?? -2)) };
  } while (cursor !== '0');
}

/** How many keys match the pattern and the condition now; stops early after `stopAfter` of them. */
export async function countMatching(redis: Redis, params: ExpireParams, stopAfter = Infinity): Promise<number> {
  let matching = 0;
  for await (const batch of matchingBatches(redis, params)) {
    matching += batch.keys.length;
    if (matching >= stopAfter) break;
  }
  return matching;
}

async function applyBatch(redis: Redis, params: ExpireParams, keys: Buffer[]): Promise<number> {
  if (keys.length === 0) return 0;
  if (params.mode === 'unlink') return redis.unlink(...keys);
  const [changed] = integers(await redis.eval(EXPIRE_EACH, keys.length, ...keys, params.expireSeconds ?? 0), 1, 'EXPIRE');
  return changed ?? 0;
}

function conditionText(params: ExpireParams): string {
  if (params.when === 'no-ttl') return 'that have no TTL';
  if (params.when === 'ttl-over') return `whose TTL is over ${params.ttlOverSeconds}s`;
  return '';
}

/** A configured target and a pattern it declares: the screen, and resolve again for a run the engine did not screen. */
function requirePattern(params: ExpireParams, config: Readonly<Config>): ExpireParams {
  const target = requireRedisTarget(config, params.target);
  // The pattern decides what is deleted; only patterns the operator declared (and upkeep measures) are allowed.
  if (!target.keyPatterns.includes(params.pattern)) {
    throw new ValidationError(`pattern "${params.pattern}" is not in targets.redis[${params.target}].keyPatterns; declare it there to allow expire_keys on it`);
  }
  return params;
}

/**
 * What run() does: the resolved scan (target, declared pattern, batch size) and what it does to each
 * kept key (mode, TTL conditions, expireSeconds). The keys themselves are found as the run scans,
 * so a large keyspace is never held in memory or in the journal.
 */
export type ExpirePayload = ExpireParams;

/** What run() did, journalled and read back by verify: `unlinked` or `expired` by the payload's mode. */
export type ExpireOutput = { scanned: number; matched: number; unlinked?: number; expired?: number; batches: number };

export const expireKeys: Action<ExpireParams, ExpirePayload, ExpireOutput> = {
  name: 'redis.expire_keys',
  description: 'SCAN for a key pattern, then UNLINK the keys or set an expiry, one batch at a time (never KEYS).',
  riskClass: 'destructive (deletes or expires keys); only patterns declared in targets.redis[].keyPatterns',
  params: expireParams,
  risk: () => 'destructive',
  screen: (params, config) => { requirePattern(params, config); },
  async resolve(params, context) {
    return requirePattern(params, context.config);
  },
  lock: (params) => redisLock(`redis.expire_keys:${params.pattern}`, params.target),
  async check(params, context) {
    const found = await countMatching(await context.connections.redis(params.target), params, 1);
    if (found === 0) return { proceed: false, reason: `no key matches ${params.pattern} ${conditionText(params)}`.trim(), observed: { matching: 0 } };
    return { proceed: true, reason: `keys match ${params.pattern} ${conditionText(params)}`.trim(), observed: { matching: found } };
  },
  async plan(params, context) {
    // Counting is read-only; a dry run records this plan, so it is where the count is reported.
    const matching = await countMatching(await context.connections.redis(params.target), params);
    const steps: PlanStep[] = [{ kind: 'redis', detail: `SCAN <cursor> MATCH ${params.pattern} COUNT ${params.batchSize}, until the cursor returns to 0` }];
    if (needsTtl(params)) steps.push({ kind: 'redis', detail: `PTTL <key> for each scanned key (one EVAL per batch), keeping keys ${conditionText(params) || `whose TTL is over ${params.expireSeconds}s or unset`}` });
    steps.push(params.mode === 'unlink'
      ? { kind: 'redis', detail: `UNLINK <kept keys of the batch> (${matching} keys match now)` }
      : { kind: 'redis', detail: `EXPIRE <key> ${params.expireSeconds} for each kept key (one EVAL per batch; ${matching} keys match now)` });
    return { steps, payload: params };
  },
  async run(_params, payload, context) {
    const redis = await context.connections.redis(payload.target);
    let scanned = 0;
    let matched = 0;
    let affected = 0;
    let batches = 0;
    const done = () => ({ scanned, matched, ...(payload.mode === 'unlink' ? { unlinked: affected } : { expired: affected }), batches });
    try {
      for await (const batch of matchingBatches(redis, payload, context.signal)) {
        scanned += batch.scanned;
        matched += batch.keys.length;
        affected += await applyBatch(redis, payload, batch.keys);
        batches += 1;
      }
    } catch (err) {
      // Keys already unlinked (or expired) stay so: the journal says how many.
      throw new PartialWork(err, done());
    }
    context.log.info({ target: payload.target, pattern: payload.pattern, matched, affected }, 'expire_keys finished');
    return { detail: done() };
  },
  async verify(params, _before, output, context) {
    const remaining = await countMatching(await context.connections.redis(params.target), params);
    const { matched } = output.detail;
    // New keys may keep arriving on a live server; the run worked if the backlog shrank.
    const ok = matched === 0 || remaining < matched;
    return { ok, detail: `${remaining} keys still match ${params.pattern} ${conditionText(params)} (${matched} matched during the run)`.trim(), observed: { remaining } };
  },
};
