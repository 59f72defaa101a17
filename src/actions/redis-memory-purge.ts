import type { Redis } from 'ioredis';
import { z } from 'zod';
import { errorMessage } from '../log.js';
import { readMemory } from '../systems/redis/state.js';
import type { Action } from './contract.js';
import { flag, identifier } from './params.js';
import { positiveNumber, redisLock, resolveTarget, screenTarget } from './redis-target.js';
import { onFirstUse } from '../lazy-schema.js';

export type ActiveDefrag = 'enabled' | 'already-enabled' | 'unsupported' | 'refused' | 'not-requested';

/**
 * CONFIG SET activedefrag yes fails on builds without Redis's own jemalloc (Debian's, for one),
 * and for an ACL user without +config|set (docs/security.md leaves it out on purpose); either is
 * reported, not fatal. The two were one "unsupported", which blamed the build for the ACL.
 */
async function enableActiveDefrag(redis: Redis): Promise<{ state: ActiveDefrag; reason?: string }> {
  const current = await redis.config('GET', 'activedefrag');
  if (current[1] === 'yes') return { state: 'already-enabled' };
  try {
    await redis.config('SET', 'activedefrag', 'yes');
    return { state: 'enabled' };
  } catch (err) {
    // Journalled and logged: masked like every error text that leaves upkeep.
    const reason = errorMessage(err);
    return { state: reason.startsWith('NOPERM') ? 'refused' : 'unsupported', reason };
  }
}

const SKIP_IT = 'MEMORY PURGE ran without it (the parameter activeDefrag: false skips the attempt and this line)';

const purgeParams = onFirstUse(() => z.strictObject({
  target: identifier,
  /** Also switch on active defragmentation (left on: it works incrementally, in the background). */
  activeDefrag: flag(true),
  /** Skip the run when mem_fragmentation_ratio has already fallen below this (alert-driven runs). */
  minFragmentationRatio: positiveNumber().optional(),
}));
export type PurgeParams = z.infer<typeof purgeParams>;

/** What run() does: MEMORY PURGE on the target, and whether it also switches on active defragmentation. */
export interface PurgePayload { readonly target: string; readonly activeDefrag: boolean }

/** What run() observed, journalled and read back by verify. */
export type PurgeOutput = {
  purge: string;
  activeDefrag: ActiveDefrag;
  activeDefragReason?: string;
  fragmentationRatioBefore: number;
  fragmentationRatioAfter: number;
  allocatorFragmentationRatioBefore: number;
  allocatorFragmentationRatioAfter: number;
  rssBytesBefore: number;
  rssBytesAfter: number;
};

export const memoryPurge: Action<PurgeParams, PurgePayload, PurgeOutput> = {
  name: 'redis.memory_purge',
  description: 'MEMORY PURGE, plus active defragmentation where the server supports it, instead of restarting Redis.',
  riskClass: 'safe (no restart, no data loss; defrag runs within activedefrag CPU limits)',
  params: purgeParams,
  risk: () => 'safe',
  screen: screenTarget,
  resolve: resolveTarget,
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
    return { steps, payload: { target: params.target, activeDefrag: params.activeDefrag } };
  },
  async run(_params, payload, context) {
    const redis = await context.connections.redis(payload.target);
    const before = await readMemory(redis);
    const purge = await redis.memory('PURGE');
    const defrag = payload.activeDefrag ? await enableActiveDefrag(redis) : { state: 'not-requested' as const };
    if (defrag.state === 'unsupported') context.log.warn({ target: payload.target, reason: defrag.reason }, `active defragmentation is not available on this Redis build; ${SKIP_IT}`);
    if (defrag.state === 'refused') context.log.info({ target: payload.target, reason: defrag.reason }, `CONFIG SET activedefrag was refused: the ACL user has no +config|set (docs/security.md leaves it out); ${SKIP_IT}`);
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
      detail: `mem_fragmentation_ratio ${ratioBefore} -> ${memory.fragmentationRatio}; MEMORY PURGE ${output.detail.purge}; activedefrag ${defragOn ? 'yes' : 'no'} (${wanted})`,
      observed: { ...memory, activeDefrag: defragOn },
    };
  },
};
