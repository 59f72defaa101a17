import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile, readdir } from 'node:fs/promises';
import { waitFor } from '../src/demo/servers/ports.js';

/** A program under measurement, stopped by its own PID. */
export interface Service {
  readonly name: string;
  readonly pid: number;
  readonly url: string;
  output(): string;
  stop(): Promise<void>;
}

/** Starts a program and waits until `readyUrl` answers (upkeep: /healthz, so no scrape happens before the measured ones). */
export async function startService(name: string, command: string, args: string[], url: string, readyUrl: string, env: Record<string, string> = {}): Promise<Service> {
  const child: ChildProcess = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let output = '';
  const keep = (chunk: Buffer) => { output = (output + chunk.toString()).slice(-10_000); };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  if (child.pid === undefined) throw new Error(`${name}: could not start ${command}`);
  const service: Service = {
    name,
    pid: child.pid,
    url,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
  await waitFor(`${name} to answer`, async () => {
    if (child.exitCode !== null) throw new Error(`${name} exited: ${output}`);
    const response = await fetch(readyUrl);
    await response.arrayBuffer();
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
  }, 120_000, 200);
  return service;
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux). */
export async function cpuSeconds(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).replace(/^.*\) /s, '').split(' ');
  // utime and stime are fields 14 and 15 of stat(5); the split starts at field 3. Clock ticks are 100 a second on Linux.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Resident memory of a process and its descendants, in bytes (0 once it is gone). */
export async function rssBytes(pid: number): Promise<number> {
  let total = 0;
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    total += Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
    for (const task of await readdir(`/proc/${pid}/task`)) {
      const children = (await readFile(`/proc/${pid}/task/${task}/children`, 'utf8')).trim();
      for (const child of children === '' ? [] : children.split(' ')) total += await rssBytes(Number(child));
    }
  } catch {
    // The process exited between two reads: it holds no memory any more.
  }
  return total;
}

/** Samples the RSS of some processes every 100 ms and keeps the peak of each. */
export class RssSampler {
  readonly peaks = new Map<number, number>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pids: readonly number[]) {
    this.timer = setInterval(() => { void this.sample(); }, 100);
  }

  async sample(): Promise<void> {
    for (const pid of this.pids) {
      const rss = await rssBytes(pid);
      this.peaks.set(pid, Math.max(this.peaks.get(pid) ?? 0, rss));
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}
