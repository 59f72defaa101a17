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

// Redis stamps LASTSAVE with time(), which may read the kernel's coarse clock, up to a tick behind
// the precise clock TIME reads: a save started just as TIME turned the second could be stamped with
// the old second and taken for no save at all (the likeliest cause of a CI failure, not proven).
// Starting a little into the next second leaves the coarse clock time to turn.
const PAST_THE_SECOND_MS = 50;

/** LASTSAVE has one-second resolution: a save in the same second as the last one could not be told apart. */
async function waitForNextSecond(redis: Redis, lastSave: number, signal: AbortSignal): Promise<void> {
  for (;;) {
    const [seconds, micros] = await redis.time();
    const now = Number(seconds);
    const intoSecondMs = Number(micros) / 1000;
    if (now > lastSave + 1 || (now === lastSave + 1 && intoSecondMs >= PAST_THE_SECOND_MS)) return;
    // To PAST_THE_SECOND_MS into the second after LASTSAVE's.
    const waitMs = now === lastSave + 1 ? PAST_THE_SECOND_MS - intoSecondMs : 1000 - intoSecondMs + PAST_THE_SECOND_MS;
    await sleep(Math.max(10, waitMs), undefined, { signal });
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
 * Whether the save run() waits for has completed: none is running now, and LASTSAVE passed the one
 * before, or else (LASTSAVE has one-second resolution: a CI run failed, status ok, with LASTSAVE
 * still on the second before) rdb_saves, which Redis 7.0 and later count as saves
 * start, shows one started after `before` (or the one running then) and it ended well.
 */
export function completed(before: Persistence, state: Persistence): boolean {
  if (state.bgsaveInProgress) return false;
  if (state.lastSave > before.lastSave) return true;
  if (before.rdbSaves === null || state.rdbSaves === null) return false;
  return state.rdbSaves >= before.rdbSaves + (before.bgsaveInProgress ? 0 : 1) && state.lastBgsaveStatus === 'ok';
}

/** How the saves moved between two readings, in the words of the figure that shows it. */
function progress(before: Pick<Persistence, 'lastSave' | 'rdbSaves'>, after: Pick<Persistence, 'lastSave' | 'rdbSaves'>): string {
  if (after.lastSave > before.lastSave || before.rdbSaves === null || after.rdbSaves === null) return `LASTSAVE advanced from ${before.lastSave} to ${after.lastSave}`;
  return `rdb_saves went from ${before.rdbSaves} to ${after.rdbSaves} (LASTSAVE ${after.lastSave}, in the same second)`;
}

/**
 * Polls INFO until the save completes (completed), on the same server (run_id); fails
 * when the server goes idle without a new save, or restarted meanwhile.
 */
async function waitForSave(redis: Redis, reconnect: () => Promise<Redis>, before: Persistence, signal: AbortSignal): Promise<Persistence> {
  let idleSince: number | null = null;
  for (;;) {
    const state = await pollState(redis, reconnect, signal);
    if (state.runId !== before.runId) throw new Error(restarted('during the BGSAVE', before, state));
    const busy = state.bgsaveInProgress || state.aofRewriteInProgress;
    if (completed(before, state)) return state;
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
export type BgsaveOutput = { start: string; runId: string; lastSaveBefore: number; lastSave: number; status: string; saves?: number | null };
/** What the check saw, journalled as its observations (rdbSaves: not journalled before it was read). */
const checked = onFirstUse(() => z.object({ runId: z.string(), lastSave: z.number(), rdbSaves: z.number().nullable().default(null) }));

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
    return { detail: { start, runId: after.runId, lastSaveBefore: before.lastSave, lastSave: after.lastSave, status: after.lastBgsaveStatus, saves: after.rdbSaves } };
  },
  async verify(params, before, output, context) {
    const state = await readPersistence(await context.connections.redis(params.target));
    const previous = { ...state, ...checked.parse(before.observed) };
    if (state.runId !== previous.runId) return { ok: false, detail: restarted('since the check', previous, state), observed: { ...state } };
    // The save run() saw complete is newer than the check's, and nothing older replaced it since.
    const saved = { lastSave: output.detail.lastSave, rdbSaves: output.detail.saves ?? null };
    const newer = saved.lastSave > previous.lastSave || (saved.rdbSaves !== null && previous.rdbSaves !== null && saved.rdbSaves > previous.rdbSaves);
    const ok = newer && state.lastSave >= saved.lastSave && state.lastBgsaveStatus === 'ok';
    return {
      ok,
      detail: ok ? `${progress(previous, saved)}, rdb_last_bgsave_status:ok, same run_id` : `LASTSAVE ${state.lastSave} (was ${previous.lastSave}), rdb_last_bgsave_status:${state.lastBgsaveStatus}`,
      observed: { ...state },
    };
  },
};
