import type { Redis } from 'ioredis';
import { parseInfo } from './info.js';

// What upkeep reads from a live Redis: its persistence and memory state, from INFO.

function infoFields(text: string): ReadonlyMap<string, string> {
  return parseInfo(text).fields;
}

function numberField(fields: ReadonlyMap<string, string>, name: string): number {
  const value = Number(fields.get(name));
  return Number.isFinite(value) ? value : 0;
}

export interface Persistence {
  /** INFO server's run_id: a new one at every start, so a restart is told from a save. */
  runId: string;
  lastSave: number;
  bgsaveInProgress: boolean;
  aofRewriteInProgress: boolean;
  lastBgsaveStatus: string;
  /** INFO's rdb_saves (Redis 7.0 and later): snapshots completed since the server started; null before 7.0. */
  rdbSaves: number | null;
}

export async function readPersistence(redis: Redis): Promise<Persistence> {
  // The default sections (server and persistence among them) in one reply, so the run_id and the
  // save state come from the same server; INFO with several sections needs Redis 7.
  const fields = infoFields(await redis.info());
  return {
    runId: fields.get('run_id') ?? 'unknown',
    lastSave: numberField(fields, 'rdb_last_save_time'),
    bgsaveInProgress: fields.get('rdb_bgsave_in_progress') === '1',
    aofRewriteInProgress: fields.get('aof_rewrite_in_progress') === '1',
    lastBgsaveStatus: fields.get('rdb_last_bgsave_status') ?? 'unknown',
    rdbSaves: fields.has('rdb_saves') ? numberField(fields, 'rdb_saves') : null,
  };
}

export interface MemoryState {
  fragmentationRatio: number;
  allocatorFragmentationRatio: number;
  usedBytes: number;
  rssBytes: number;
  allocator: string;
  activeDefragRunning: boolean;
}

export async function readMemory(redis: Redis): Promise<MemoryState> {
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
