import cron from 'node-cron';
import { z } from 'zod';
import { cronError } from '../remediation/windows.js';
import { parseDurationSeconds } from './duration.js';

// Every object is strict: a typo in a key is an error, never a silently ignored setting.
const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'must be letters, digits, ".", "_" or "-"');
const seconds = z.number().positive();
const duration = z.string().refine((text) => parseDurationSeconds(text) !== null, 'must be a duration such as "30 days" or "12h"');
const params = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]));

const regex = z.string().refine((text) => { try { new RegExp(text); return true; } catch { return false; } }, 'must be a valid regular expression');

const tableFilter = z.strictObject({
  include: z.array(regex).default([]),
  exclude: z.array(regex).default([]),
  minDeadTuples: z.number().int().min(0).default(0),
  limit: z.number().int().positive().default(500),
});

const postgresTarget = z.strictObject({
  name,
  url: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL'),
  databases: z.union([z.literal('auto'), z.array(z.string().min(1)).min(1)]).default('auto'),
  tables: tableFilter.default({ include: [], exclude: [], minDeadTuples: 0, limit: 500 }),
  sizeRefreshSeconds: seconds.default(300),
  // How often `databases: auto` looks for databases created or dropped since.
  discoverRefreshSeconds: seconds.default(300),
  statements: z.strictObject({ enabled: z.boolean().default(false), limit: z.number().int().positive().default(10) })
    .default({ enabled: false, limit: 10 }),
});

const redisTarget = z.strictObject({
  name,
  url: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL'),
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

const httpTarget = z.strictObject({
  name,
  url: z.string().regex(/^https?:\/\//, 'must be an http:// or https:// URL'),
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

const window = z.strictObject({
  name,
  cron: z.string().min(1).superRefine((text, ctx) => {
    const problem = cronError(text);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  }),
  durationMinutes: z.number().int().positive(),
  timezone: z.string().optional(),
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
  cron: z.string().min(1).refine((text) => cron.validate(text), 'must be a cron expression (5 fields, or 6 with seconds first)'),
  remediation: z.string().min(1),
  params: params.default({}),
  timezone: z.string().refine(isTimeZone, 'must be an IANA time zone such as "Asia/Tokyo" or "UTC"').optional(),
  dryRun: z.boolean().optional(),
  // A schedule is an automatic trigger: disruptive or destructive entries need this and an open window.
  allowRisk: z.enum(['safe', 'disruptive', 'destructive']).default('safe'),
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
    // The most runs one GET /runs page may hold (its `limit`).
    runsPageLimit: z.number().int().min(1).max(1000).default(1000),
  }).default({ host: '127.0.0.1', port: 9630, bodyLimitBytes: 1048576, runsPageLimit: 1000 }),
  state: z.strictObject({
    dir: z.string().default('./data'),
    // How long the journal keeps runs; whole segments older than this are removed.
    retention: duration.default('90 days'),
  }).default({ dir: './data', retention: '90 days' }),
  alertmanager: z.strictObject({ url: z.string().regex(/^https?:\/\//, 'must be an http(s) URL') }).optional(),
  targets: z.strictObject({
    postgres: z.array(postgresTarget).default([]),
    redis: z.array(redisTarget).default([]),
    docker: z.array(dockerTarget).default([]),
    backups: z.array(backupTarget).default([]),
    disks: z.array(diskTarget).default([]),
    logs: z.array(logTarget).default([]),
    http: z.array(httpTarget).default([]),
    files: z.array(fileTarget).default([]),
  }).default({ postgres: [], redis: [], docker: [], backups: [], disks: [], logs: [], http: [], files: [] }),
  collectors: z.strictObject({
    timeoutSeconds: seconds.default(5),
    disabled: z.array(z.string()).default([]),
  }).default({ timeoutSeconds: 5, disabled: [] }),
  remediation: z.strictObject({
    dryRun: z.boolean().default(false),
    timeoutSeconds: seconds.default(3600),
    // How long a Postgres remediation waits for a table lock before failing (capped by the run's deadline).
    lockTimeoutSeconds: seconds.default(60),
    // Runs executing at once; the rest wait in the queue, where a resolved alert can still cancel them.
    concurrency: z.number().int().positive().default(4),
    cooldownSeconds: z.number().min(0).default(300),
    circuitBreaker: z.strictObject({
      failures: z.number().int().positive().default(3),
      windowSeconds: seconds.default(3600),
    }).default({ failures: 3, windowSeconds: 3600 }),
    rules: z.array(rule).default([]),
    windows: z.array(window).default([]),
    retention: z.array(retention).default([]),
  }).default({ dryRun: false, timeoutSeconds: 3600, lockTimeoutSeconds: 60, concurrency: 4, cooldownSeconds: 300, circuitBreaker: { failures: 3, windowSeconds: 3600 }, rules: [], windows: [], retention: [] }),
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
