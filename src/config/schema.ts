import { z } from 'zod';
import { dockerTarget } from '../systems/docker/target.js';
import { name, seconds } from '../systems/fields.js';
import { backupTarget, diskTarget, fileTarget, logTarget } from '../systems/files/target.js';
import { httpTarget, httpUrl } from '../systems/http/target.js';
import { postgresTarget, postgresUrl } from '../systems/postgres/target.js';
import { redisTarget } from '../systems/redis/target.js';
import { backupOverlap } from './backup-overlap.js';
import { cronError } from './cron.js';
import { distinct } from './distinct.js';
import { parseDurationSeconds } from './duration.js';
import { withoutFragment } from './url-fragment.js';

// Every object is strict: a typo in a key is an error, never a silently ignored setting. Each
// system's target schema lives with the system (src/systems/<system>/target.ts).

const count = (fallback: number) => z.number().int().positive().default(fallback);
const duration = z.string().refine((text) => parseDurationSeconds(text) !== null, 'must be a duration such as "30 days" or "12h"');
const params = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]));

const rule = z.strictObject({
  match: z.record(z.string(), z.string()),
  remediation: z.string().min(1),
  params: params.default({}),
  dryRun: z.boolean().optional(),
  // Disruptive and destructive remediations only run from an alert when the rule says so.
  allowRisk: z.enum(['safe', 'disruptive', 'destructive']).default('safe'),
});

// Windows and schedule entries speak one cron dialect (src/config/cron.ts), in an IANA time zone.
const cron = z.string().min(1).superRefine((text, ctx) => {
  const problem = cronError(text);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});
const timezone = z.string().refine(isTimeZone, 'must be an IANA time zone such as "Asia/Tokyo" or "UTC"');

const window = z.strictObject({
  name,
  cron,
  durationMinutes: z.number().int().positive(),
  timezone: timezone.optional(),
});

const retention = z.strictObject({
  name,
  target: name,
  database: z.string().min(1),
  table: z.string().min(1),
  timestampColumn: z.string().min(1),
  olderThan: duration,
  archiveTable: z.string().min(1).nullable().default(null),
  batchSize: z.number().int().positive().default(5000),
  where: z.string().optional(),
});

const scheduleEntry = z.strictObject({
  name,
  cron,
  remediation: z.string().min(1),
  params: params.default({}),
  timezone: timezone.optional(),
  dryRun: z.boolean().optional(),
  // A schedule is an automatic trigger: disruptive or destructive entries need this and an open window.
  allowRisk: z.enum(['safe', 'disruptive', 'destructive']).default('safe'),
});

/**
 * The PostgreSQL state store. The schema name goes into SQL as an identifier, so it is held to
 * what needs no quoting (and fits PostgreSQL's 63 bytes).
 */
const statePostgres = z.strictObject({
  url: withoutFragment(postgresUrl),
  schema: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be an SQL identifier: lower-case letters, digits and "_", not starting with a digit, at most 63').default('upkeep'),
  // Each statement's limit (and the connect timeout): a stuck database fails a claim, it does not hang it.
  timeoutSeconds: seconds.default(10),
  // How long a replica's runs outlive it: renewed every third of it, a peer marks a dead replica's runs interrupted once it expires.
  leaseSeconds: z.number().int().min(3).max(3600).default(30),
  // Targets shared out: how often a replica renews its membership heartbeat (and reads who is live),
  // and how old a heartbeat may be before its replica's targets move to the others.
  memberHeartbeatSeconds: z.number().min(1).max(60).default(2),
  memberLeaseSeconds: z.number().min(3).max(3600).default(10),
}).refine((shared) => shared.memberLeaseSeconds >= 3 * shared.memberHeartbeatSeconds, {
  path: ['memberLeaseSeconds'],
  message: 'must be at least 3 times state.postgres.memberHeartbeatSeconds, so a replica whose heartbeat is a little late is not taken for gone',
});

// The targets whose URLs carry a password to a driver: a '#' in one is refused (url-fragment.ts).
// http and alertmanager URLs take no credentials at all (systems/http/target.ts).
const postgresEntry = postgresTarget.extend({ url: withoutFragment(postgresTarget.shape.url) });
const redisEntry = redisTarget.extend({ url: withoutFragment(redisTarget.shape.url) });

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

export const configSchema = z.strictObject({
  server: z.strictObject({
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(9630),
    // What a client can send in an Authorization header: a token with a NUL or a newline (from a
    // ${file:...} secret, say) was accepted, and no request could ever carry it.
    authToken: z.string().refine((token) => !/[\x00-\x1f\x7f]/.test(token), 'must not hold control characters (a NUL, a newline): no Authorization header can carry them').optional(),
    bodyLimitBytes: z.number().int().positive().default(1048576),
    // Slow clients: every limit on how long a client may hold a connection (docs/configuration.md).
    headersTimeoutSeconds: seconds.default(10),
    requestTimeoutSeconds: seconds.default(30),
    idleTimeoutSeconds: seconds.default(10),
    keepAliveTimeoutSeconds: seconds.default(72),
    shutdownTimeoutSeconds: seconds.default(10),
    // Sizes of what a request, a webhook or a manual run may carry.
    maxHeaderBytes: count(16384),
    maxAlertsPerWebhook: count(1000),
    maxLabels: count(64),
    maxLabelNameBytes: count(256),
    maxLabelValueBytes: count(4096),
    maxParams: count(32),
    maxParamNameBytes: count(128),
    maxParamValueBytes: count(4096),
    // The most runs one GET /runs page may hold (its `limit`).
    runsPageLimit: z.number().int().min(1).max(1000).default(1000),
  }).refine((server) => server.headersTimeoutSeconds <= server.requestTimeoutSeconds, {
    path: ['headersTimeoutSeconds'], message: 'must not be more than server.requestTimeoutSeconds (the headers are part of the request)',
  }).prefault({}),
  state: z.strictObject({
    dir: z.string().default('./data'),
    // How long the journal keeps runs; whole segments older than this are removed.
    retention: duration.default('90 days'),
    // The shared store: set it and every replica keeps its journal and guards in this database.
    postgres: statePostgres.optional(),
  }).prefault({}),
  alertmanager: z.strictObject({ url: httpUrl('must be an http(s) URL') }).optional(),
  targets: z.strictObject({
    postgres: z.array(postgresEntry).superRefine(distinct('name', 'targets.postgres')).default([]),
    redis: z.array(redisEntry).superRefine(distinct('name', 'targets.redis')).default([]),
    docker: z.array(dockerTarget).superRefine(distinct('name', 'targets.docker')).default([]),
    backups: z.array(backupTarget).superRefine(distinct('name', 'targets.backups')).superRefine(backupOverlap).default([]),
    disks: z.array(diskTarget).superRefine(distinct('path', 'targets.disks')).default([]),
    logs: z.array(logTarget).superRefine(distinct('name', 'targets.logs')).default([]),
    http: z.array(httpTarget).superRefine(distinct('name', 'targets.http')).default([]),
    files: z.array(fileTarget).superRefine(distinct('name', 'targets.files')).default([]),
  }).prefault({}),
  collectors: z.strictObject({
    timeoutSeconds: seconds.default(5),
    disabled: z.array(z.string()).default([]),
  }).prefault({}),
  remediation: z.strictObject({
    dryRun: z.boolean().default(false),
    timeoutSeconds: seconds.default(3600),
    // How long a Postgres remediation waits for a table lock before failing (capped by the run's deadline).
    lockTimeoutSeconds: seconds.default(60),
    // A Redis remediation's lock (SET NX PX) expires this long after its last renewal (every third
    // of it): how soon a crashed replica's lock, or one Redis could not renew, is free again.
    redisLockTtlSeconds: z.number().int().min(3).max(3600).default(30),
    // Runs executing at once; the rest wait in the queue, where a resolved alert can still cancel them.
    concurrency: z.number().int().positive().default(4),
    // Dry runs executing at once, beside `concurrency` real runs: they hold no lock and execute
    // nothing, and their catalog reads share pooled sessions (engine/run-connections.ts), up to
    // twice this many per target database: the default stays as small as `concurrency` so that
    // a team trying upkeep in dry-run mode adds few sessions to a busy database.
    dryRunConcurrency: z.number().int().min(1).max(64).default(4),
    // Where the actions' steps execute: `thread`, a worker thread, so acknowledging webhooks and
    // serving /metrics never wait behind runs (the guards and the journal stay on the main
    // thread); `inline`, the main event loop, saving the thread's memory (~21 MB while it lives).
    executor: z.enum(['thread', 'inline']).default('thread'),
    // Runs waiting for a free slot; beyond it POST /alertmanager and POST /remediations answer 429.
    maxQueued: count(1000),
    // The largest timeoutSeconds a request may ask for.
    maxTimeoutSeconds: seconds.default(86400),
    cooldownSeconds: z.number().min(0).default(300),
    circuitBreaker: z.strictObject({
      failures: z.number().int().positive().default(3),
      windowSeconds: seconds.default(3600),
    }).prefault({}),
    rules: z.array(rule).default([]),
    windows: z.array(window).default([]),
    retention: z.array(retention).superRefine(distinct('name', 'remediation.retention')).default([]),
  }).refine((remediation) => remediation.timeoutSeconds <= remediation.maxTimeoutSeconds, {
    path: ['timeoutSeconds'], message: 'must not be more than remediation.maxTimeoutSeconds',
  }).prefault({}),
  schedule: z.array(scheduleEntry).superRefine(distinct('name', 'schedule')).default([]),
});

export type Config = z.infer<typeof configSchema>;
export type { PostgresTarget } from '../systems/postgres/target.js';
export type { RedisTarget } from '../systems/redis/target.js';
export type { DockerTarget } from '../systems/docker/target.js';
export type { BackupTarget, FileTarget, LogTarget } from '../systems/files/target.js';
export type { HttpTarget } from '../systems/http/target.js';
export type RemediationRule = Config['remediation']['rules'][number];
export type RetentionPolicy = Config['remediation']['retention'][number];
export type ScheduleEntry = Config['schedule'][number];
