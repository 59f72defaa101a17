import { hostname } from 'node:os';

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
