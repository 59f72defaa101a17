import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';

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
