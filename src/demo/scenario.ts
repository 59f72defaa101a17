import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { parseConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { startAlertmanager, type AlertmanagerServer } from './servers/alertmanager.js';
import { freePort } from './servers/ports.js';
import { startPostgres, type PostgresServer } from './servers/postgres.js';
import { startStandby, type StandbyServer } from './servers/postgres-standby.js';
import { startPrometheus, type PrometheusServer } from './servers/prometheus.js';
import { startRedis, type RedisServer } from './servers/redis.js';
import { buildApp, type App } from '../server.js';
import { makeBigLog, makeCeleryBacklog, makeDeadTuples, makeFailedBgsave, makeStaleBackup } from './problems.js';
import { shortenedRules } from './rules.js';
import { PACKAGE_ROOT } from '../version.js';
import { dockerode, nodeCrypto } from '../lazy.js';

export const RULES_FILE = fileURLToPath(new URL('alerts/upkeep.rules.yml', PACKAGE_ROOT));

export interface Scenario {
  readonly config: Readonly<Config>;
  readonly app: App;
  /** Base URL of the running upkeep, e.g. http://127.0.0.1:9630 */
  readonly url: string;
  readonly token: string;
  readonly postgres: PostgresServer;
  /** With `standby`: the streaming standby of `postgres`, watched as target `replica`. */
  readonly standby: StandbyServer | undefined;
  readonly redis: RedisServer;
  readonly prometheus: PrometheusServer;
  readonly alertmanager: AlertmanagerServer;
  readonly dirs: { readonly root: string; readonly backups: string; readonly logs: string; readonly state: string };
  readonly docker: boolean;
  /** upkeep's /metrics text. */
  metrics(): Promise<string>;
  /** upkeep's journal, newest first. */
  runs(): Promise<JournalRun[]>;
  stop(): Promise<void>;
}

const journalRun = z.object({
  id: z.string(),
  remediation: z.string(),
  trigger: z.string(),
  status: z.string(),
  reason: z.string().optional(),
  alert: z.object({ fingerprint: z.string(), alertname: z.string(), startsAt: z.string() }).passthrough().optional(),
  params: z.record(z.string(), z.unknown()).optional(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
}).passthrough();
export type JournalRun = z.infer<typeof journalRun>;
const runsResponse = z.union([z.array(journalRun), z.object({ runs: z.array(journalRun) }).transform((body) => body.runs)]);

export interface ScenarioOptions {
  log: Logger;
  /** upkeep's port; 0 picks a free one. */
  port?: number;
  /** How often Prometheus scrapes and evaluates, and upkeep refreshes cached readings. */
  intervalSeconds?: number;
  /**
   * Also start a streaming standby of the PostgreSQL (pg_basebackup over the replication slot
   * `replica_slot`, hot_standby_feedback on) and watch it as target `replica`, so the
   * replication metrics have a standby, its slot and its replay lag to show.
   */
  standby?: boolean;
  /** Stops the start between its steps: what was started so far is stopped and removed, and the start rejects. */
  signal?: AbortSignal;
}

async function dockerReachable(): Promise<boolean> {
  try {
    await new (dockerode())({ socketPath: '/var/run/docker.sock' }).ping();
    return true;
  } catch {
    return false;
  }
}

function demoConfig(postgres: PostgresServer, standby: StandbyServer | undefined, redis: RedisServer, dirs: Scenario['dirs'], token: string, docker: boolean, interval: number, port: number): string {
  return `
server: { host: 127.0.0.1, port: ${port}, authToken: "${token}" }
state: { dir: "${dirs.state}" }
targets:
  postgres:
    - { name: main, url: "${postgres.url('refnet')}", databases: [refnet], sizeRefreshSeconds: ${interval}, statements: { enabled: true, limit: 10 } }
${standby ? `    - { name: replica, url: "${standby.url('refnet')}", databases: [refnet], sizeRefreshSeconds: ${interval} }\n` : ''}  redis:
    - { name: cache, url: "${redis.url}", keyPatterns: ["celery-task-meta-*"], keyPatternRefreshSeconds: ${interval} }
${docker ? '  docker:\n    - { name: local, socketPath: /var/run/docker.sock, diskRefreshSeconds: 10 }\n' : ''}  backups:
    - { name: refnet, dir: "${dirs.backups}", pattern: "refnet_*.sql.gz", keepDays: 7, source: { target: main, database: refnet } }
  disks: [{ path: / }]
  http:
    - { name: upkeep-self, url: "http://127.0.0.1:${port}/healthz" }
  logs:
    - { name: app, dir: "${dirs.logs}", pattern: "*.log*", refreshSeconds: ${interval} }
collectors: { timeoutSeconds: 5 }
remediation:
  cooldownSeconds: 5
  rules:
    - match: { alertname: PostgresDeadTuplesHigh }
      remediation: postgres.vacuum
      params: { target: "{{labels.target}}", database: "{{labels.database}}", table: "{{labels.schema}}.{{labels.table}}" }
    - match: { alertname: BackupTooOld }
      remediation: backup.pg_dump
      params: { backup: "{{labels.backup}}" }
    - match: { alertname: RedisBgsaveFailed }
      remediation: redis.bgsave
      params: { target: "{{labels.target}}" }
    - match: { alertname: RedisKeyPatternBacklog }
      remediation: redis.expire_keys
      params: { target: "{{labels.target}}", pattern: "{{labels.pattern}}", when: no-ttl }
      allowRisk: destructive
  # The demo's maintenance window is always open so the destructive Celery cleanup may run.
  windows: [{ name: demo, cron: "* * * * *", durationMinutes: 1440 }]
schedule:
  - { name: rotate-app-logs, cron: "*/${interval * 5} * * * * *", remediation: logs.rotate, params: { name: app }, allowRisk: disruptive }
`;
}

/** A streaming standby of `postgres` over the slot `replica_slot`, named `replica`. */
async function startReplica(postgres: PostgresServer): Promise<StandbyServer> {
  await postgres.query("SELECT pg_create_physical_replication_slot('replica_slot')");
  return startStandby(postgres, { slot: 'replica_slot', name: 'replica' });
}

/**
 * Starts throwaway PostgreSQL and Redis, makes the runbooks' problems on them for real, and
 * runs upkeep, Prometheus (with the shipped rules) and Alertmanager (posting to upkeep with a
 * bearer token) around them, all on 127.0.0.1.
 */
export async function startScenario(options: ScenarioOptions): Promise<Scenario> {
  const interval = options.intervalSeconds ?? 2;
  const root = await mkdtemp(join(tmpdir(), 'upkeep-demo-'));
  const dirs = { root, backups: join(root, 'backups'), logs: join(root, 'logs'), state: join(root, 'state') };
  const cleanups: (() => Promise<unknown>)[] = [() => rm(root, { recursive: true, force: true })];
  const stop = async () => { for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined); };
  try {
    // pg_stat_statements feeds the slow-query panel, as the runbooks' monthly top-10 report did.
    const postgres = await startPostgres({ settings: { shared_preload_libraries: "'pg_stat_statements'" } });
    cleanups.push(() => postgres.destroy());
    options.signal?.throwIfAborted();
    const redis = await startRedis({ args: ['--enable-protected-configs', 'yes', '--maxmemory', '256mb'] });
    cleanups.push(() => redis.destroy());
    options.signal?.throwIfAborted();
    const docker = await dockerReachable();

    await postgres.query('CREATE DATABASE refnet');
    await postgres.query('CREATE EXTENSION pg_stat_statements', [], 'refnet');
    await makeDeadTuples(postgres.url('refnet'), 'public.job_logs', 60_000, 40_000);
    await makeDeadTuples(postgres.url('refnet'), 'public.documents', 20_000, 0);
    options.signal?.throwIfAborted();
    // The standby copies the database as made so far (so its xmin, through its slot, is newer
    // than the dead tuples and does not hold back their vacuum) and starts while the other
    // problems are made.
    const standbyStarting = options.standby ? startReplica(postgres) : Promise.resolve(undefined);
    // Awaited below; a failure meanwhile must not count as unhandled.
    standbyStarting.catch(() => undefined);
    cleanups.push(async () => (await standbyStarting)?.destroy());
    await makeStaleBackup(dirs.backups, 'refnet', 72);
    await makeCeleryBacklog(redis.url, 120_000);
    await makeFailedBgsave(redis.url, redis.dir);
    await makeBigLog(dirs.logs, 20 * 1024 * 1024, 3);
    options.signal?.throwIfAborted();
    const standby = await standbyStarting;
    const token = nodeCrypto().randomBytes(16).toString('hex');
    const port = options.port || (await freePort());
    const parsed = parseConfig(demoConfig(postgres, standby, redis, dirs, token, docker, interval, port), {});
    if (!parsed.ok) throw new Error(`demo config: ${parsed.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`);
    const config = parsed.config;
    const app = await buildApp({ config, log: options.log });
    cleanups.push(() => app.fastify.close());
    await app.fastify.listen({ host: '127.0.0.1', port });
    const url = `http://127.0.0.1:${port}`;

    options.signal?.throwIfAborted();
    const alertmanager = await startAlertmanager({ webhookUrl: `${url}/alertmanager`, bearerToken: token });
    cleanups.push(() => alertmanager.destroy());
    const rules = join(root, 'upkeep.rules.yml');
    await shortenedRules(RULES_FILE, rules);
    const prometheus = await startPrometheus({ scrapeTarget: new URL(url).host, ruleFiles: [rules], alertmanager: `127.0.0.1:${alertmanager.port}`, intervalSeconds: 1 });
    cleanups.push(() => prometheus.destroy());
    options.signal?.throwIfAborted();

    return {
      config, app, url, token, postgres, standby, redis, prometheus, alertmanager, dirs, docker,
      // Over the socket, as Prometheus and an operator read them: the installed build leaves out
      // Fastify's inject (scripts/build.ts), and with it the demo crashed at its first look.
      metrics: async () => (await fetch(`${url}/metrics`)).text(),
      runs: async () => runsResponse.parse(await (await fetch(`${url}/runs`)).json()),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
