import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { errorMessage } from '../log.js';
import { readPersistence, type Persistence } from '../systems/redis/state.js';
import type { Action } from './contract.js';
import { redisLock, resolveTarget, targetParams, type TargetParams } from './redis-target.js';

const POLL_MS = 100;
// A save that was accepted but shows neither progress nor a new LASTSAVE for this long has failed
// (or was scheduled behind an AOF rewrite that then died); waiting on would only hide it.
const IDLE_GRACE_MS = 3000;

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
    const message = errorMessage(err);
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

/** The server run() saves. */
export interface BgsavePayload { readonly target: string }

export const bgsave: Action<TargetParams, BgsavePayload> = {
  name: 'redis.bgsave',
  description: 'BGSAVE, then wait until LASTSAVE advances (joins a save already in progress).',
  riskClass: 'safe (a forked background save; the server keeps serving)',
  params: targetParams,
  risk: () => 'safe',
  resolve: resolveTarget,
  lock: (params) => redisLock('redis.bgsave', params.target),
  async check(params, context) {
    const state = await readPersistence(await context.connections.redis(params.target));
    return { proceed: true, reason: `LASTSAVE is ${state.lastSave}`, observed: { ...state } };
  },
  async plan(params) {
    return {
      steps: [
        { kind: 'redis', detail: 'BGSAVE' },
        { kind: 'redis', detail: 'INFO persistence (poll until rdb_last_save_time advances and rdb_bgsave_in_progress:0)' },
      ],
      payload: { target: params.target },
    };
  },
  async run(_params, payload, context) {
    const redis = await context.connections.redis(payload.target);
    const before = await readPersistence(redis);
    if (!before.bgsaveInProgress) await waitForNextSecond(redis, before.lastSave, context.signal);
    const start = await startBgsave(redis);
    context.log.info({ target: payload.target, start }, 'waiting for BGSAVE');
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
