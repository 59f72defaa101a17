/**
 * Key cleanup benchmark: `redis.expire_keys` (through the real `upkeep run` of the installed
 * package) against the runbook's own cleanup, the Lua script that `redis-cli --eval` runs at 04:00
 * (KEYS celery-task-meta-*, then TTL and DEL for each key, in one script), on the same throwaway
 * Redis, filled the same way before each side, alternating, in one run.
 *
 * Besides the time each side takes, it measures what the other clients of that Redis go through:
 * a client sends PING every 10 ms during the cleanup and records how long the answers take, and
 * SLOWLOG records the longest single command. The runbook's script holds Redis for its whole run.
 *   npm run bench:expire-keys [-- --keys 200000 --rounds 2]
 * Prints numbers; it asserts nothing. See docs/performance.md, "Key cleanup benchmark".
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Redis } from 'ioredis';
import { stringify } from 'yaml';
import { fillKeys, startRedis, type RedisServer } from '../src/demo/servers/redis.js';
import { upkeepBin } from '../test/product/installed.js';
import { percentile } from './scrape-procs.js';
import { median } from './stats.js';

const { values: options } = parseArgs({ options: { keys: { type: 'string', default: '200000' }, rounds: { type: 'string', default: '2' } } });
const KEYS = Number(options.keys);
const ROUNDS = Number(options.rounds);
const DAY = 86_400;
// The runbook's script, word for word (refnet-maintenance.ja.md, scripts/daily-cleanup.sh).
const RUNBOOK_SCRIPT = `local keys = redis.call('keys', 'celery-task-meta-*')
for i=1,#keys do
  local ttl = redis.call('ttl', keys[i])
  if ttl > 604800 then
    redis.call('del', keys[i])
  end
end
`;

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** What the runbook deletes (task results kept 30 days) and, half as many each, what it must keep. */
async function fill(client: Redis): Promise<void> {
  await client.flushall();
  await fillKeys(client, 'celery-task-meta-old-', KEYS, { value: '{"status":"SUCCESS"}', ttlSeconds: 30 * DAY });
  await fillKeys(client, 'celery-task-meta-new-', KEYS / 4, { value: '{"status":"SUCCESS"}', ttlSeconds: 3600 });
  await fillKeys(client, 'celery-task-meta-none-', KEYS / 4, { value: '{"status":"SUCCESS"}' });
  await fillKeys(client, 'session:', KEYS / 4, { value: 'x', ttlSeconds: 30 * DAY });
}

/** PING every 10 ms until stopped: the answers' latencies in ms. */
function prober(client: Redis) {
  const latencies: number[] = [];
  let running = true;
  const done = (async () => {
    while (running) {
      const sent = performance.now();
      await client.ping();
      latencies.push(performance.now() - sent);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  return { latencies, stop: async () => { running = false; await done; } };
}

interface Measured { seconds: number; deleted: number; slowestMs: number; pingMaxMs: number; pingP99Ms: number }

async function measure(server: RedisServer, command: string, args: string[]): Promise<Measured> {
  const admin = server.client();
  const probe = server.client();
  try {
    await fill(admin);
    const before = await admin.dbsize();
    await admin.config('SET', 'slowlog-log-slower-than', '1000');
    await admin.slowlog('RESET');
    const pings = prober(probe);
    const started = performance.now();
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
    const [code] = await once(child, 'close');
    const seconds = (performance.now() - started) / 1000;
    await pings.stop();
    if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}: ${stdout}`);
    const slowlog: unknown = await admin.slowlog('GET', 1000);
    // Each SLOWLOG entry is [id, unix time, microseconds, [command, args...], ...].
    const micros = Array.isArray(slowlog) ? slowlog.map((entry: unknown) => (Array.isArray(entry) ? Number(entry[2]) : 0)) : [];
    return {
      seconds,
      deleted: before - await admin.dbsize(),
      slowestMs: Math.max(0, ...micros) / 1000,
      pingMaxMs: Math.max(0, ...pings.latencies),
      pingP99Ms: percentile(pings.latencies, 99),
    };
  } finally {
    admin.disconnect();
    probe.disconnect();
  }
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'upkeep-bench-keys-'));
  const server = await startRedis();
  try {
    const scriptFile = join(root, 'daily-cleanup.lua');
    await writeFile(scriptFile, RUNBOOK_SCRIPT);
    const configFile = join(root, 'upkeep.yaml');
    await writeFile(configFile, stringify({ state: { dir: join(root, 'state') }, targets: { redis: [{ name: 'cache', url: server.url, keyPatterns: ['celery-task-meta-*'] }] } }));
    const bin = await upkeepBin();
    const runbookArgs = ['-h', '127.0.0.1', '-p', String(server.port), '--eval', scriptFile, '0'];
    const upkeepArgs = ['run', 'redis.expire_keys', '--param', 'target=cache', '--param', 'pattern=celery-task-meta-*', '--param', 'when=ttl-over', '--param', 'ttlOverSeconds=604800', '--config', configFile];
    log(`${KEYS} keys to delete among ${KEYS * 1.75}; ${cpus().length} CPUs; load average ${loadavg().map((value) => value.toFixed(1)).join(' ')}`);
    const results: { runbook: Measured[]; upkeep: Measured[] } = { runbook: [], upkeep: [] };
    for (let round = 1; round <= ROUNDS; round += 1) {
      const shell = await measure(server, 'redis-cli', runbookArgs);
      results.runbook.push(shell);
      log(`round ${round}: runbook ${shell.seconds.toFixed(2)} s, ${shell.deleted} deleted, longest stall ${shell.pingMaxMs.toFixed(0)} ms`);
      const ours = await measure(server, bin, upkeepArgs);
      results.upkeep.push(ours);
      log(`round ${round}: upkeep  ${ours.seconds.toFixed(2)} s, ${ours.deleted} deleted, longest stall ${ours.pingMaxMs.toFixed(0)} ms`);
    }
    log('');
    log('| | median s | keys deleted | longest command (SLOWLOG) ms | PING p99 ms | PING max ms |');
    log('|---|---:|---:|---:|---:|---:|');
    const row = (name: string, entries: Measured[]) => log(`| ${name} | ${median(entries.map((e) => e.seconds)).toFixed(2)} | ${median(entries.map((e) => e.deleted))} | ${Math.max(...entries.map((e) => e.slowestMs)).toFixed(1)} | ${Math.max(...entries.map((e) => e.pingP99Ms)).toFixed(1)} | ${Math.max(...entries.map((e) => e.pingMaxMs)).toFixed(1)} |`);
    row('runbook `redis-cli --eval` (KEYS, TTL, DEL in one script)', results.runbook);
    row('`upkeep run redis.expire_keys` (whole process)', results.upkeep);
    log('');
    log(`time ratio, upkeep / runbook: ${(median(results.upkeep.map((e) => e.seconds)) / median(results.runbook.map((e) => e.seconds))).toFixed(2)}`);
  } finally {
    await server.destroy();
    await rm(root, { recursive: true, force: true });
  }
}

await main();
