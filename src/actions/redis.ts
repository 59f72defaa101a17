import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { Config } from '../config/schema.js';
import { parseInfo } from '../systems/redis/info.js';
import { errorMessage } from '../log.js';
import { flag, identifier } from './params.js';
import { type Action, type LockSpec } from './contract.js';
import { ValidationError } from '../errors.js';

const POLL_MS = 100;
// A save that was accepted but shows neither progress nor a new LASTSAVE for this long has failed
// (or was scheduled behind an AOF rewrite that then died); waiting on would only hide it.
const IDLE_GRACE_MS = 3000;

function infoFields(text: string): ReadonlyMap<string, string> {
  return parseInfo(text).fields;
}

function numberField(fields: ReadonlyMap<string, string>, name: string): number {
  const value = Number(fields.get(name));
  return Number.isFinite(value) ? value : 0;
}

/** A positive number that may arrive as text (`--param minFragmentationRatio=1.5`, alert label templates). */
export function positiveNumber() {
  return z.preprocess((value) => (typeof value === 'string' && /^\d+(\.\d+)?$/.test(value) ? Number(value) : value), z.number().positive());
}

export function requireRedisTarget(config: Readonly<Config>, target: string): Config['targets']['redis'][number] {
  const entry = config.targets.redis.find((candidate) => candidate.name === target);
  if (!entry) throw new ValidationError(`unknown redis target "${target}" (not in targets.redis)`);
  return entry;
}

/** The lock lives on the target server itself, so the key only needs to name the work. */
export function redisLock(key: string, target: string): LockSpec {
  return { kind: 'redis', target, key };
}

export const targetParams = z.strictObject({ target: identifier });
export type TargetParams = z.infer<typeof targetParams>;

export interface Persistence {
  lastSave: number;
  bgsaveInProgress: boolean;
  aofRewriteInProgress: boolean;
  lastBgsaveStatus: string;
}

export async function readPersistence(redis: Redis): Promise<Persistence> {
  const fields = infoFields(await redis.info('persistence'));
  return {
    lastSave: numberField(fields, 'rdb_last_save_time'),
    bgsaveInProgress: fields.get('rdb_bgsave_in_progress') === '1',
    aofRewriteInProgress: fields.get('aof_rewrite_in_progress') === '1',
    lastBgsaveStatus: fields.get('rdb_last_bgsave_status') ?? 'unknown',
  };
}

/** LASTSAVE has one-second resolution: a save in the same second as the last one could not be told apart. */
async function waitForNextSecond(redis: Redis, lastSave: number, signal: AbortSignal): Promise<void> {
  for (;;) {
    const [seconds, micros] = await redis.time();
    const now = Number(seconds);
    if (now > lastSave) return;
    await sleep(Math.max(10, 1000 - Number(micros) / 1000), undefined, { signal });
  }
}

async function startBgsave(redis: Redis): Promise<'started' | 'joined' | 'scheduled'> {
  try {
    await redis.bgsave();
    return 'started';
  } catch (err) {
    const message = (err as Error).message;
    if (/already in progress/i.test(message)) return 'joined';
    // An AOF rewrite holds the fork; SCHEDULE runs the save as soon as it is done.
    if (/rewriting in progress|BGSAVE SCHEDULE/i.test(message)) {
      await redis.bgsave('SCHEDULE');
      return 'scheduled';
    }
    throw err;
  }
}

/** Polls INFO persistence until LASTSAVE passes `after`; fails when the server goes idle without a new save. */
async function waitForSave(redis: Redis, after: number, signal: AbortSignal): Promise<Persistence> {
  let idleSince: number | null = null;
  for (;;) {
    const state = await readPersistence(redis);
    const busy = state.bgsaveInProgress || state.aofRewriteInProgress;
    if (!state.bgsaveInProgress && state.lastSave > after) return state;
    if (busy) idleSince = null;
    else idleSince ??= Date.now();
    if (idleSince !== null && Date.now() - idleSince > IDLE_GRACE_MS) {
      throw new Error(`BGSAVE did not complete: LASTSAVE stayed at ${after}, rdb_last_bgsave_status:${state.lastBgsaveStatus}; check the Redis log (disk full, fork failed, permissions on dir)`);
    }
    await sleep(POLL_MS, undefined, { signal });
  }
}

export const bgsave: Action<TargetParams> = {
  name: 'redis.bgsave',
  description: 'BGSAVE, then wait until LASTSAVE advances (joins a save already in progress).',
  riskClass: 'safe (a forked background save; the server keeps serving)',
  params: targetParams,
  risk: () => 'safe',
  async resolve(params, context) {
    requireRedisTarget(context.config, params.target);
    return params;
  },
  lock: (params) => redisLock('redis.bgsave', params.target),
  async check(params, context) {
    const state = await readPersistence(await context.connections.redis(params.target));
    return { proceed: true, reason: `LASTSAVE is ${state.lastSave}`, observed: { ...state } };
  },
  async plan() {
    return [
      { kind: 'redis', detail: 'BGSAVE' },
      { kind: 'redis', detail: 'INFO persistence (poll until rdb_last_save_time advances and rdb_bgsave_in_progress:0)' },
    ];
  },
  async run(params, _plan, context) {
    const redis = await context.connections.redis(params.target);
    const before = await readPersistence(redis);
    if (!before.bgsaveInProgress) await waitForNextSecond(redis, before.lastSave, context.signal);
    const start = await startBgsave(redis);
    context.log.info({ target: params.target, start }, 'waiting for BGSAVE');
    const after = await waitForSave(redis, before.lastSave, context.signal);
    return { detail: { start, lastSaveBefore: before.lastSave, lastSave: after.lastSave, status: after.lastBgsaveStatus } };
  },
  async verify(params, before, _output, context) {
    const state = await readPersistence(await context.connections.redis(params.target));
    const previous = Number(before.observed?.lastSave ?? 0);
    const ok = state.lastSave > previous && state.lastBgsaveStatus === 'ok';
    return {
      ok,
      detail: ok ? `LASTSAVE advanced from ${previous} to ${state.lastSave}` : `LASTSAVE ${state.lastSave} (was ${previous}), rdb_last_bgsave_status:${state.lastBgsaveStatus}`,
      observed: { ...state },
    };
  },
};

interface MemoryState {
  fragmentationRatio: number;
  allocatorFragmentationRatio: number;
  usedBytes: number;
  rssBytes: number;
  allocator: string;
  activeDefragRunning: boolean;
}

async function readMemory(redis: Redis): Promise<MemoryState> {
  const fields = infoFields(await redis.info('memory'));
  return {
    fragmentationRatio: numberField(fields, 'mem_fragmentation_ratio'),
    allocatorFragmentationRatio: numberField(fields, 'allocator_frag_ratio'),
    usedBytes: numberField(fields, 'used_memory'),
    rssBytes: numberField(fields, 'used_memory_rss'),
    allocator: fields.get('mem_allocator') ?? 'unknown',
    activeDefragRunning: (fields.get('active_defrag_running') ?? '0') !== '0',
  };
}

export type ActiveDefrag = 'enabled' | 'already-enabled' | 'unsupported' | 'not-requested';

/** CONFIG SET activedefrag yes fails on builds without Redis's own jemalloc (Debian's, for one); that is reported, not fatal. */
async function enableActiveDefrag(redis: Redis): Promise<{ state: ActiveDefrag; reason?: string }> {
  const current = await redis.config('GET', 'activedefrag');
  if (current[1] === 'yes') return { state: 'already-enabled' };
  try {
    await redis.config('SET', 'activedefrag', 'yes');
    return { state: 'enabled' };
  } catch (err) {
    // Journalled and logged: masked like every error text that leaves upkeep.
    return { state: 'unsupported', reason: errorMessage(err) };
  }
}

const purgeParams = z.strictObject({
  target: identifier,
  /** Also switch on active defragmentation (left on: it works incrementally, in the background). */
  activeDefrag: flag(true),
  /** Skip the run when mem_fragmentation_ratio has already fallen below this (alert-driven runs). */
  minFragmentationRatio: positiveNumber().optional(),
});
export type PurgeParams = z.infer<typeof purgeParams>;

export const memoryPurge: Action<PurgeParams> = {
  name: 'redis.memory_purge',
  description: 'MEMORY PURGE, plus active defragmentation where the server supports it, instead of restarting Redis.',
  riskClass: 'safe (no restart, no data loss; defrag runs within activedefrag CPU limits)',
  params: purgeParams,
  risk: () => 'safe',
  async resolve(params, context) {
    requireRedisTarget(context.config, params.target);
    return params;
  },
  lock: (params) => redisLock('redis.memory_purge', params.target),
  async check(params, context) {
    const memory = await readMemory(await context.connections.redis(params.target));
    const threshold = params.minFragmentationRatio;
    if (threshold !== undefined && memory.fragmentationRatio < threshold) {
      return { proceed: false, reason: `mem_fragmentation_ratio ${memory.fragmentationRatio} is below ${threshold}`, observed: { ...memory } };
    }
    return { proceed: true, reason: `mem_fragmentation_ratio is ${memory.fragmentationRatio}`, observed: { ...memory } };
  },
  async plan(params) {
    const steps = [{ kind: 'redis' as const, detail: 'MEMORY PURGE' }];
    if (params.activeDefrag) {
      steps.push({ kind: 'redis', detail: 'CONFIG GET activedefrag' }, { kind: 'redis', detail: 'CONFIG SET activedefrag yes (skipped when unsupported by the allocator)' });
    }
    return steps;
  },
  async run(params, _plan, context) {
    const redis = await context.connections.redis(params.target);
    const before = await readMemory(redis);
    const purge = await redis.memory('PURGE');
    const defrag = params.activeDefrag ? await enableActiveDefrag(redis) : { state: 'not-requested' as const };
    if (defrag.state === 'unsupported') context.log.warn({ target: params.target, reason: defrag.reason }, 'active defragmentation is not available on this Redis build');
    const after = await readMemory(redis);
    return {
      detail: {
        purge,
        activeDefrag: defrag.state,
        ...(defrag.reason ? { activeDefragReason: defrag.reason } : {}),
        fragmentationRatioBefore: before.fragmentationRatio,
        fragmentationRatioAfter: after.fragmentationRatio,
        allocatorFragmentationRatioBefore: before.allocatorFragmentationRatio,
        allocatorFragmentationRatioAfter: after.allocatorFragmentationRatio,
        rssBytesBefore: before.rssBytes,
        rssBytesAfter: after.rssBytes,
      },
    };
  },
  async verify(params, before, output, context) {
    const redis = await context.connections.redis(params.target);
    const memory = await readMemory(redis);
    const defragOn = (await redis.config('GET', 'activedefrag'))[1] === 'yes';
    const wanted = output.detail.activeDefrag;
    // Fragmentation falls over minutes as defrag runs; what can be checked now is that each step took effect.
    const ok = output.detail.purge === 'OK' && (wanted === 'enabled' || wanted === 'already-enabled' ? defragOn : true);
    const ratioBefore = Number(before.observed?.fragmentationRatio ?? 0);
    return {
      ok,
      detail: `mem_fragmentation_ratio ${ratioBefore} -> ${memory.fragmentationRatio}; MEMORY PURGE ${String(output.detail.purge)}; activedefrag ${defragOn ? 'yes' : 'no'} (${String(wanted)})`,
      observed: { ...memory, activeDefrag: defragOn },
    };
  },
};
