import { hostname } from 'node:os';
import type { RunRecord } from '../journal.js';

export const HOST = hostname();

/**
 * True when another process on this host with that pid is alive (a server while `upkeep run`
 * starts, or the other way round). The file store serves one host: what another host (a pod
 * before its restart) left behind is dead, as is anything of this very process.
 */
export function otherProcessAlive(host: string | undefined, pid: number | undefined): boolean {
  if (host !== HOST || pid === undefined || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A run whose owner died before it finished, as the journal records it: interrupted, saying at which stage (and, when a peer judged it, which owner). */
export function interruptedRecord(record: RunRecord, now: Date, deadOwner?: string): RunRecord {
  const who = deadOwner === undefined ? 'upkeep stopped' : `${deadOwner} stopped renewing its lease`;
  return {
    ...record,
    status: 'interrupted',
    reason: record.status === 'running' ? `${who} while the run was in progress; check the target before re-running` : `${who} before the run started`,
    finishedAt: now.toISOString(),
  };
}

/** A replica as messages name it. */
export function replicaName(host: string | undefined, pid: number | undefined): string {
  return `replica ${host ?? '(unknown host)'} (pid ${pid ?? 'unknown'})`;
}
