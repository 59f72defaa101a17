import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import { NoLongerPossible, waitFor } from './ports.js';

export interface Daemon {
  readonly child: ChildProcess;
  /** What the process wrote, for error messages. */
  output(): string;
  stop(): Promise<void>;
}

/** Spawns a long-running program, keeping the tail of its output and stopping it by its own PID. */
export function startDaemon(command: string, args: readonly string[]): Daemon {
  const child = spawn(command, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer) => { output = (output + chunk.toString()).slice(-20_000); };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return {
    child,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export interface ReadyDaemon {
  readonly daemon: Daemon;
  /** Stops the program and deletes its working directory. */
  destroy(): Promise<void>;
}

/**
 * Starts a Prometheus-family program that owns `dir` and waits for its `/-/ready` endpoint;
 * on failure it is stopped, its directory removed, and the error carries what it printed.
 */
export async function startUntilReady(name: string, command: string, args: readonly string[], url: string, dir: string): Promise<ReadyDaemon> {
  const daemon = startDaemon(command, args);
  // 'close' comes after the program's output has all been read, so the error can carry all of it.
  const closed = new Promise<void>((resolve) => { daemon.child.once('close', () => resolve()); });
  const destroy = async () => {
    await daemon.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(name, async () => {
      if (daemon.child.exitCode !== null || daemon.child.signalCode !== null) {
        await closed;
        // A program that exited never becomes ready: fail now, not when the wait times out.
        throw new NoLongerPossible(`${name} exited: ${daemon.output()}`);
      }
      const response = await fetch(`${url}/-/ready`);
      if (!response.ok) throw new Error(`status ${response.status}`);
    });
  } catch (err) {
    await destroy();
    throw err;
  }
  return { daemon, destroy };
}
