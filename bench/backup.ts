/**
 * Backup benchmark: `backup.pg_dump` (through the real `upkeep run` of the installed package)
 * against the runbook's own `pg_dump | gzip > file`, on the same throwaway PostgreSQL database,
 * alternating, in one run.
 *   npm run bench:backup [-- --size-mb 1024 --rounds 2]
 * Prints numbers; it asserts nothing. See docs/performance.md, "Backup benchmark".
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { parseConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { postgresBinary, systemBinary } from '../src/systems/process/child.js';
import { Engine } from '../src/engine/engine.js';
import { startPostgres, type PostgresServer } from '../src/demo/servers/postgres.js';
import { rssBytes } from './scrape-procs.js';
import { recordGoal } from './goals.js';
import { upkeepBin } from '../test/product/installed.js';
import { median } from './stats.js';

const { values: options } = parseArgs({ options: { 'size-mb': { type: 'string', default: '1024' }, rounds: { type: 'string', default: '2' } } });
const SIZE_MB = Number(options['size-mb']);
const ROUNDS = Number(options.rounds);
const MB = 1024 * 1024;

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** One big table (about sizeMb on disk) and a few small ones, filled server-side in 100k-row slices. */
async function fill(server: PostgresServer, sizeMb: number): Promise<void> {
  await server.query('create database bench');
  const rows = Math.round((sizeMb * MB) / 200);
  await server.query('create table events (id bigint primary key, created_at timestamptz not null, payload text not null)', [], 'bench');
  for (let from = 1; from <= rows; from += 100_000) {
    const to = Math.min(rows, from + 99_999);
    await server.query(`insert into events select g, now() - g * interval '1 second', md5(g::text) || repeat('x', 60) || md5((g * 7)::text) from generate_series(${from}, ${to}) g`, [], 'bench');
  }
  await server.query("create table accounts as select g as id, 'user ' || g as name from generate_series(1, 50000) g", [], 'bench');
  await server.query('vacuum analyze', [], 'bench');
}

/** Own RSS of a process, and of it plus its descendants, sampled every 100 ms until stopped. */
function sampler(pid: number) {
  const peak = { own: 0, tree: 0 };
  const timer = setInterval(() => {
    void readFile(`/proc/${pid}/status`, 'utf8').then((status) => {
      peak.own = Math.max(peak.own, Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024);
    }, () => undefined);
    void rssBytes(pid).then((bytes) => { peak.tree = Math.max(peak.tree, bytes); });
  }, 100);
  return { peak, stop: () => clearInterval(timer) };
}

interface Measured { seconds: number; bytes: number; ownRss: number; treeRss: number; actionSeconds?: number }

async function timed(command: string, args: string[]): Promise<{ seconds: number; ownRss: number; treeRss: number; stdout: string }> {
  const started = performance.now();
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const rss = sampler(child.pid ?? 0);
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
  const [code] = await once(child, 'close');
  rss.stop();
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}: ${stdout}`);
  return { seconds: (performance.now() - started) / 1000, ownRss: rss.peak.own, treeRss: rss.peak.tree, stdout };
}

async function runbook(url: string, file: string): Promise<Measured> {
  const [pgDump, gzip] = await Promise.all([postgresBinary('pg_dump'), systemBinary('gzip')]);
  const result = await timed('bash', ['-o', 'pipefail', '-c', `'${pgDump}' --dbname '${url}' | '${gzip}' > '${file}'`]);
  return { ...result, bytes: (await stat(file)).size };
}

async function upkeep(configFile: string, configText: string): Promise<Measured> {
  const result = await timed(await upkeepBin(), ['run', 'backup.pg_dump', '--param', 'backup=bench', '--config', configFile]);
  const file = /rename to (\S+), fsync/.exec(result.stdout)?.[1] ?? '';
  // The action's own timing (dump, fsync, rename, retention), from the journal; the process time
  // above adds node start-up, the journal and the verification (hashing the file once more).
  const parsed = parseConfig(configText, {});
  if (!parsed.ok) throw new Error('bench config invalid');
  const engine = await Engine.create({ config: parsed.config, log: createLogger({ level: 'silent' }) });
  const [record] = (await engine.list({ remediation: 'backup.pg_dump', status: 'success' }, null, 1)).runs;
  await engine.close();
  await rm(file, { force: true });
  return { ...result, bytes: Number(record?.output?.gzipBytes ?? 0), actionSeconds: Number(record?.output?.seconds ?? Number.NaN) };
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'upkeep-bench-backup-'));
  const server = await startPostgres();
  try {
    log(`filling a ${SIZE_MB} MB database...`);
    await fill(server, SIZE_MB);
    const [size] = await server.query<{ bytes: string }>("select pg_database_size('bench')::text as bytes");
    const stateDir = join(root, 'state');
    const configText = stringify({
      state: { dir: stateDir },
      targets: {
        postgres: [{ name: 'main', url: server.url('postgres') }],
        backups: [{ name: 'bench', dir: join(root, 'upkeep'), pattern: 'bench_*.sql.gz', keepDays: 7, source: { target: 'main', database: 'bench' } }],
      },
    });
    const configFile = join(root, 'upkeep.yaml');
    await writeFile(configFile, configText);
    log(`database: ${(Number(size?.bytes) / MB).toFixed(0)} MB; ${cpus().length} CPUs; load average ${loadavg().map((value) => value.toFixed(1)).join(' ')}`);
    log('warm-up dump (to /dev/null), so both sides read from the same cache...');
    await timed('bash', ['-c', `'${await postgresBinary('pg_dump')}' --dbname '${server.url('bench')}' > /dev/null`]);
    const results: { runbook: Measured[]; upkeep: Measured[] } = { runbook: [], upkeep: [] };
    for (let round = 1; round <= ROUNDS; round += 1) {
      const shell = await runbook(server.url('bench'), join(root, `runbook_${round}.sql.gz`));
      results.runbook.push(shell);
      await rm(join(root, `runbook_${round}.sql.gz`));
      log(`round ${round}: runbook ${shell.seconds.toFixed(2)} s`);
      const ours = await upkeep(configFile, configText);
      results.upkeep.push(ours);
      log(`round ${round}: upkeep  ${ours.actionSeconds?.toFixed(2)} s in the action, ${ours.seconds.toFixed(2)} s for the whole \`upkeep run\``);
    }
    const runbookSeconds = median(results.runbook.map((entry) => entry.seconds));
    const actionSeconds = median(results.upkeep.map((entry) => entry.actionSeconds ?? Number.NaN));
    const processSeconds = median(results.upkeep.map((entry) => entry.seconds));
    log('');
    log('| | median s | gzip MB | peak RSS MB (process) | peak RSS MB (process and children) |');
    log('|---|---:|---:|---:|---:|');
    const row = (name: string, seconds: number, entries: Measured[]) => log(`| ${name} | ${seconds.toFixed(2)} | ${(median(entries.map((e) => e.bytes)) / MB).toFixed(1)} | ${(Math.max(...entries.map((e) => e.ownRss)) / MB).toFixed(0)} | ${(Math.max(...entries.map((e) => e.treeRss)) / MB).toFixed(0)} |`);
    row('runbook `pg_dump \\| gzip > file` (bash)', runbookSeconds, results.runbook);
    row('`backup.pg_dump` (the action)', actionSeconds, results.upkeep);
    row('`upkeep run backup.pg_dump` (whole process, incl. verify)', processSeconds, results.upkeep);
    log('');
    log(`time ratio, action / runbook: ${(actionSeconds / runbookSeconds).toFixed(3)}`);
    log(`time ratio, whole upkeep run / runbook: ${(processSeconds / runbookSeconds).toFixed(3)} (goal <= 1.0)`);
    // The goal is the whole `upkeep run`: node's start-up, the journal and the verification are
    // what a user waits for, and the runbook's time holds all of its own work.
    await recordGoal({ id: 'backup', upkeep: processSeconds, peer: runbookSeconds, ratio: processSeconds / runbookSeconds, met: processSeconds / runbookSeconds <= 1.0, note: `the whole \`upkeep run\`, verification included, median of ${results.upkeep.length}; ${SIZE_MB} MB asked` });
  } finally {
    await server.destroy();
    await rm(root, { recursive: true, force: true });
  }
}

await main();
