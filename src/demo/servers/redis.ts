import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { ioredis } from '../../lazy.js';
import { freePort, waitFor } from './ports.js';

export interface RedisServer {
  port: number;
  dir: string;
  url: string;
  /** A new client; the caller quits it. */
  client(): Redis;
  stop(): Promise<void>;
  start(): Promise<void>;
  destroy(): Promise<void>;
}

export interface RedisOptions {
  /** Extra redis-server arguments, e.g. ['--requirepass', 'secret']. */
  args?: string[];
  password?: string;
}

/** A throwaway redis-server on 127.0.0.1 and a free port, with its own data directory. */
export async function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'upkeep-redis-'));
  const port = await freePort();
  let child: ChildProcess | null = null;
  const auth = options.password ? `:${encodeURIComponent(options.password)}@` : '';
  const passwordArgs = options.password ? ['--requirepass', options.password] : [];
  const server: RedisServer = {
    port,
    dir,
    url: `redis://${auth}127.0.0.1:${port}`,
    client: () => new (ioredis().Redis)({ host: '127.0.0.1', port, password: options.password, lazyConnect: false, maxRetriesPerRequest: 1 }),
    async start() {
      child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', ...passwordArgs, ...(options.args ?? [])], { stdio: 'ignore' });
      await waitFor('redis', async () => {
        const probe = new (ioredis().Redis)({ host: '127.0.0.1', port, password: options.password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
        probe.on('error', () => undefined); // refused connections are expected until it listens
        try {
          await probe.connect();
          await probe.ping();
        } finally {
          probe.disconnect();
        }
      });
    },
    async stop() {
      const running = child;
      child = null;
      if (!running || running.exitCode !== null) return;
      const exited = once(running, 'exit');
      // A BGSAVE or AOF rewrite runs in a fork that outlives a SIGKILLed server and keeps writing
      // into the data directory: it is this server's own child, so it goes too.
      const forks = running.pid === undefined ? [] : await forksOf(running.pid);
      running.kill('SIGKILL');
      await exited;
      for (const pid of forks) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    },
    async destroy() {
      await server.stop();
      // A killed fork may still be closing its temp file for a moment.
      await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    },
  };
  await server.start();
  return server;
}

// Keys are made inside Redis, 10,000 per script: a client pipeline spends about 16 us of CPU on
// each command, which for the 100,000s of keys the demo and tests need was most of their time.
const SET_RANGE = "for i = tonumber(ARGV[2]), tonumber(ARGV[3]) do if ARGV[5] == '' then redis.call('SET', ARGV[1] .. i, ARGV[4]) else redis.call('SET', ARGV[1] .. i, ARGV[4], 'EX', ARGV[5]) end end";

/** Makes the keys prefix+0 … prefix+(count-1) holding `value`, with a TTL or without. */
export async function fillKeys(client: Redis, prefix: string, count: number, options: { value?: string; ttlSeconds?: number } = {}): Promise<void> {
  for (let start = 0; start < count; start += 10_000) {
    await client.eval(SET_RANGE, 0, prefix, start, Math.min(count, start + 10_000) - 1, options.value ?? 'x', options.ttlSeconds ?? '');
  }
}

/** The pids of a process's direct children (Linux: /proc/PID/task/PID/children). */
async function forksOf(pid: number): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  return text.split(' ').filter((word) => /^\d+$/.test(word)).map(Number);
}
