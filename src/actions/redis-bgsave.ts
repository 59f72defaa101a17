import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { errorMessage } from '../log.js';
import { readPersistence, type Persistence } from '../systems/redis/state.js';
import type { Action } from './contract.js';
import { redisLock, resolveTarget, screenTarget, targetParams, type TargetParams } from './redis-target.js';
import { onFirstUse } from '../lazy-schema.js';

const POLL_MS = 100;
// A save that was accepted but shows neither progress nor a new LASTSAVE for this long has failed
// (or was scheduled behind an AOF rewrite that then died); waiting on would only hide it.
const IDLE_GRACE_MS = 3000;
// How long a poll that lost its connection keeps trying to reach the server again, to tell a
// restart (a new run_id: the save is gone) from a dropped connection (the save may go on).
const RECONNECT_GRACE_MS = 10_000;

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

/** The message for a server that is not the one the save was asked of. */
function restarted(when: string, before: Persistence, now: Persistence): string {
  return `Redis restarted ${when} (run_id ${before.runId} is now ${now.runId}): its LASTSAVE ${now.lastSave} is its start-up, not a save; the BGSAVE did not complete`;
}

/** INFO from the target, reconnecting (through the run's connections) while it is briefly unreachable. */
async function pollState(redis: Redis, reconnect: () => Promise<Redis>, signal: AbortSignal): Promise<Persistence> {
  try {
    return await readPersistence(redis);
  } catch (err) {
    const until = Date.now() + RECONNECT_GRACE_MS;
    for (;;) {
      await sleep(POLL_MS, undefined, { signal });
      try {
        return await readPersistence(await reconnect());
      } catch (again) {
        if (Date.now() > until) throw new Error(`lost Redis during the BGSAVE: ${errorMessage(err)}; still unreachable: ${errorMessage(again)}`);
      }
    }
  }
}

/**
 * Polls INFO until LASTSAVE passes the one before the save, on the same server (run_id); fails
 * when the server goes idle without a new save, or restarted meanwhile.
 */
async function waitForSave(redis: Redis, reconnect: () => Promise<Redis>, before: Persistence, signal: AbortSignal): Promise<Persistence> {
  let idleSince: number | null = null;
  for (;;) {
    const state = await pollState(redis, reconnect, signal);
    if (state.runId !== before.runId) throw new Error(restarted('during the BGSAVE', before, state));
    const busy = state.bgsaveInProgress || state.aofRewriteInProgress;
    if (!state.bgsaveInProgress && state.lastSave > before.lastSave) return state;
    if (busy) idleSince = null;
    else idleSince ??= Date.now();
    if (idleSince !== null && Date.now() - idleSince > IDLE_GRACE_MS) {
      throw new Error(`BGSAVE did not complete: LASTSAVE stayed at ${before.lastSave}, rdb_last_bgsave_status:${state.lastBgsaveStatus}; check the Redis log (disk full, fork failed, permissions on dir)`);
    }
    await sleep(POLL_MS, undefined, { signal });
  }
}

/** The server run() saves. */
export interface BgsavePayload { readonly target: string }
/** The save run() saw complete: on which server (run_id), and LASTSAVE before and after. */
export type BgsaveOutput = { start: string; runId: string; lastSaveBefore: number; lastSave: number; status: string };
/** What the check saw, journalled as its observations. */
const checked = onFirstUse(() => z.object({ runId: z.string(), lastSave: z.number() }));

export const bgsave: Action<TargetParams, BgsavePayload, BgsaveOutput> = {
  name: 'redis.bgsave',
  description: 'BGSAVE, then wait until LASTSAVE advances on the same server (run_id) (joins a save already in progress).',
  riskClass: 'safe (a forked background save; the server keeps serving)',
  params: targetParams,
  risk: () => 'safe',
  screen: screenTarget,
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
        { kind: 'redis', detail: 'INFO (poll until rdb_last_save_time advances and rdb_bgsave_in_progress:0, with the same run_id)' },
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
    const after = await waitForSave(redis, () => context.connections.redis(payload.target), before, context.signal);
    return { detail: { start, runId: after.runId, lastSaveBefore: before.lastSave, lastSave: after.lastSave, status: after.lastBgsaveStatus } };
  },
  async verify(params, before, output, context) {
    const state = await readPersistence(await context.connections.redis(params.target));
    const previous = { ...state, ...checked.parse(before.observed) };
    if (state.runId !== previous.runId) return { ok: false, detail: restarted('since the check', previous, state), observed: { ...state } };
    // The save run() saw complete is newer than the check's, and nothing older replaced it since.
    const saved = output.detail.lastSave;
    const ok = saved > previous.lastSave && state.lastSave >= saved && state.lastBgsaveStatus === 'ok';
    return {
      ok,
      detail: ok ? `LASTSAVE advanced from ${previous.lastSave} to ${state.lastSave}, rdb_last_bgsave_status:ok, same run_id` : `LASTSAVE ${state.lastSave} (was ${previous.lastSave}), rdb_last_bgsave_status:${state.lastBgsaveStatus}`,
      observed: { ...state },
    };
  },
};
