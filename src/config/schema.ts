import { z } from 'zod';
import { cronError } from './cron.js';
import { parseDurationSeconds } from './duration.js';

// Every object is strict: a typo in a key is an error, never a silently ignored setting.
const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'must be letters, digits, ".", "_" or "-"');
// Node's timers hold at most 2^31-1 ms (24.8 days) and fire at once beyond it; every seconds
// value ends up in a timer somewhere, so each is capped well below that.
const MAX_TIMER_SECONDS = 2_000_000;
const seconds = z.number().positive().max(MAX_TIMER_SECONDS, `must be at most ${MAX_TIMER_SECONDS} (about 23 days)`);
const count = (fallback: number) => z.number().int().positive().default(fallback);
const duration = z.string().refine((text) => parseDurationSeconds(text) !== null, 'must be a duration such as "30 days" or "12h"');
const params = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]));

const regex = z.string().refine((text) => { try { new RegExp(text); return true; } catch { return false; } }, 'must be a valid regular expression');

const tableFilter = z.strictObject({
  include: z.array(regex).default([]),
  exclude: z.array(regex).default([]),
  minDeadTuples: z.number().int().min(0).default(0),
  limit: z.number().int().positive().default(500),
});

/**
 * A URL that parses: an unparseable one would fail later with an error carrying the whole URL, and
 * its password with it. The message never echoes the value.
 */
const parseableUrl = (scheme: RegExp, message: string) => z.string().regex(scheme, { message, abort: true })
  .refine((text) => URL.canParse(text), 'must be a valid URL (percent-encode special characters in the user name and password)');

const postgresTarget = z.strictObject({
  name,
  url: parseableUrl(/^postgres(ql)?:\/\//, 'must be a postgres:// URL'),
  databases: z.union([z.literal('auto'), z.array(z.string().min(1)).min(1)]).default('auto'),
  tables: tableFilter.prefault({}),
  sizeRefreshSeconds: seconds.default(300),
  // How often `databases: auto` looks for databases created or dropped since.
  discoverRefreshSeconds: seconds.default(300),
  statements: z.strictObject({ enabled: z.boolean().default(false), limit: z.number().int().positive().default(10) })
    .prefault({}),
});

const redisTarget = z.strictObject({
  name,
  url: parseableUrl(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL'),
  keyPatterns: z.array(z.string().min(1)).default([]),
  keyPatternRefreshSeconds: seconds.default(60),
  // PEM file of the CA that signed the server's certificate, for rediss:// with a private CA.
  caFile: z.string().min(1).optional(),
});

const dockerTarget = z.strictObject({
  name,
  socketPath: z.string().optional(),
  host: z.string().optional(),
  port: z.number().int().positive().optional(),
  diskRefreshSeconds: seconds.default(300),
  logRefreshSeconds: seconds.default(60),
}).refine((t) => !(t.socketPath && t.host), 'set socketPath or host, not both');

const backupTarget = z.strictObject({
  name,
  dir: z.string().min(1),
  pattern: z.string().min(1),
  keepDays: z.number().int().positive().default(7),
  source: z.strictObject({ target: name, database: z.string().min(1) }).optional(),
});

const diskTarget = z.strictObject({ path: z.string().min(1) });

const logTarget = z.strictObject({
  name,
  dir: z.string().min(1),
  pattern: z.string().min(1).default('*'),
  refreshSeconds: seconds.default(60),
});

// Directories of disposable files (temporary files, caches) that files.cleanup may delete from.
const fileTarget = z.strictObject({
  name,
  dir: z.string().min(1),
  pattern: z.string().min(1).default('*'),
});

/**
 * fetch refuses a URL with credentials, and its error (shown in /readyz) quotes the URL whole: such
 * a URL is refused here instead, by path, without echoing it.
 */
const httpUrl = (message: string) => parseableUrl(/^https?:\/\//, message)
  .refine((text) => !URL.canParse(text) || (new URL(text).username === '' && new URL(text).password === ''), 'must not contain credentials (user:password@): upkeep sends none; use an endpoint that needs no login');

const httpTarget = z.strictObject({
  name,
  url: httpUrl('must be an http:// or https:// URL'),
  timeoutSeconds: seconds.optional(),
  expectStatus: z.number().int().min(100).max(599).optional(),
});

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
  url: parseableUrl(/^postgres(ql)?:\/\//, 'must be a postgres:// URL'),
  schema: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be an SQL identifier: lower-case letters, digits and "_", not starting with a digit, at most 63').default('upkeep'),
  // Each statement's limit (and the connect timeout): a stuck database fails a claim, it does not hang it.
  timeoutSeconds: seconds.default(10),
});

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
    authToken: z.string().optional(),
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
    postgres: z.array(postgresTarget).default([]),
    redis: z.array(redisTarget).default([]),
    docker: z.array(dockerTarget).default([]),
    backups: z.array(backupTarget).default([]),
    disks: z.array(diskTarget).default([]),
    logs: z.array(logTarget).default([]),
    http: z.array(httpTarget).default([]),
    files: z.array(fileTarget).default([]),
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
    // Runs executing at once; the rest wait in the queue, where a resolved alert can still cancel them.
    concurrency: z.number().int().positive().default(4),
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
    retention: z.array(retention).default([]),
  }).refine((remediation) => remediation.timeoutSeconds <= remediation.maxTimeoutSeconds, {
    path: ['timeoutSeconds'], message: 'must not be more than remediation.maxTimeoutSeconds',
  }).prefault({}),
  schedule: z.array(scheduleEntry).default([]),
});

export type Config = z.infer<typeof configSchema>;
export type PostgresTarget = Config['targets']['postgres'][number];
export type RedisTarget = Config['targets']['redis'][number];
export type DockerTarget = Config['targets']['docker'][number];
export type BackupTarget = Config['targets']['backups'][number];
export type LogTarget = Config['targets']['logs'][number];
export type HttpTarget = Config['targets']['http'][number];
export type FileTarget = Config['targets']['files'][number];
export type RemediationRule = Config['remediation']['rules'][number];
export type RetentionPolicy = Config['remediation']['retention'][number];
export type ScheduleEntry = Config['schedule'][number];
