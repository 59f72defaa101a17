import type pg from 'pg';
import { z } from 'zod';
import { listBackups, newestValidBackup, type BackupFile } from '../systems/files/backups.js';
import { withPrivilegeNeeded } from '../errors.js';
import { errorMessage, redactText } from '../log.js';
import { recordVerify } from '../systems/files/verify-ledger.js';
import { backupLock, DUMP_TRAILER, dumpComplete, requireBackup, type SourcedBackup } from './backup.js';
import { archiveReadable, restoreArgs, restoreDirectory } from './backup-directory.js';
import { brokenPipe, childCommand, ENDING_BYTES, exited, gzipMessage, libpqTarget, piped, postgresBinary, spawnClient, stderrTail, systemBinary } from '../systems/process/child.js';
import { qualified, quoteIdent, type QualifiedName } from '../systems/postgres/sql.js';
import { identifier } from './params.js';
import type { Action, ActionContext, PlanStep } from './contract.js';
import { onFirstUse } from '../lazy-schema.js';

// Said when the scratch database is refused ("permission denied to create database" named neither).
const SCRATCH_NEEDS = 'backup.verify restores into a scratch database of its own, which needs CREATEDB on the role (docs/security.md, "Backups")';

const MAINTENANCE_DATABASE = 'postgres';
const SCRATCH_PREFIX = 'upkeep_verify_';

const verifyParams = onFirstUse(() => z.strictObject({
  backup: identifier,
  /**
   * How far a table's restored row count may be from the live source's, as a share of the larger
   * count. The source keeps changing after the dump; 0 demands exact equality.
   */
  maxRowDifferenceRatio: z.preprocess((value) => (typeof value === 'string' && /^\d+(\.\d+)?$/.test(value) ? Number(value) : value), z.number().min(0).max(1)).default(0.1),
}));
export type VerifyParams = z.infer<typeof verifyParams>;

/** Scratch databases are named for the backup, so a crashed verify's leftover is found and dropped. */
export function scratchPrefix(backup: string): string {
  return `${SCRATCH_PREFIX}${backup.toLowerCase().replace(/[^a-z0-9_]/g, '_')}_`.slice(0, 50);
}

function scratchName(backup: string, at: Date): string {
  return `${scratchPrefix(backup)}${at.getTime().toString(36)}`;
}

export interface TableCount extends QualifiedName { rows: number }
export type Comparison = { table: string; restored: number | null; source: number | null };

/** Tables whose counts differ by more than the ratio, or that exist on one side only. */
export function compareCounts(restored: readonly TableCount[], source: readonly TableCount[], maxRatio: number): Comparison[] {
  const key = (table: QualifiedName) => qualified(table);
  const fromSource = new Map(source.map((table) => [key(table), table.rows]));
  const fromRestore = new Map(restored.map((table) => [key(table), table.rows]));
  const problems: Comparison[] = [];
  for (const name of new Set([...fromSource.keys(), ...fromRestore.keys()])) {
    const restoredRows = fromRestore.get(name) ?? null;
    const sourceRows = fromSource.get(name) ?? null;
    if (restoredRows === null || sourceRows === null) {
      problems.push({ table: name, restored: restoredRows, source: sourceRows });
      continue;
    }
    const difference = Math.abs(restoredRows - sourceRows) / Math.max(restoredRows, sourceRows, 1);
    if (difference > maxRatio) problems.push({ table: name, restored: restoredRows, source: sourceRows });
  }
  return problems.sort((a, b) => a.table.localeCompare(b.table));
}

const tableRow = onFirstUse(() => z.object({ schema: z.string(), name: z.string() }));

/** Exact row counts of every user table (partitioned tables counted once, at the parent). */
export async function countRows(client: pg.Client): Promise<TableCount[]> {
  const result = await client.query(`select n.nspname as schema, c.relname as name
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p') and not c.relispartition
      and n.nspname <> 'information_schema' and n.nspname not like 'pg\\_%'
    order by 1, 2`);
  const counts: TableCount[] = [];
  for (const table of z.array(tableRow).parse(result.rows)) {
    const rows = await client.query<{ rows: string }>(`select count(*)::text as rows from ${qualified(table)}`);
    counts.push({ ...table, rows: Number(rows.rows[0]?.rows ?? 0) });
  }
  return counts;
}

async function dropScratch(admin: pg.Client, name: string): Promise<void> {
  await admin.query(`drop database if exists ${quoteIdent(name)} with (force)`);
}

/** Leftovers of a verify that died before its cleanup: dropped before a new one starts. */
async function dropStaleScratch(admin: pg.Client, backup: string): Promise<string[]> {
  const result = await admin.query<{ datname: string }>('select datname from pg_database where starts_with(datname, $1)', [scratchPrefix(backup)]);
  for (const row of result.rows) await dropScratch(admin, row.datname);
  return result.rows.map((row) => row.datname);
}

/**
 * The whole file must decompress and end like a finished pg_dump before anything is restored; a
 * directory-format dump's table of contents must read in full.
 */
async function checkComplete(file: BackupFile, signal: AbortSignal): Promise<void> {
  if (file.directory) {
    const readable = await archiveReadable(file.path, signal);
    if (readable !== true) throw new Error(`backup ${file.name} is incomplete or corrupt: ${readable}`);
    return;
  }
  if (!(await dumpComplete(file.path, signal))) {
    throw new Error(`backup ${file.name} is incomplete: it does not end with "${DUMP_TRAILER}" (pg_dump was cut short)`);
  }
}

/**
 * The statements a restoring role that neither owns the dump's objects nor is a superuser cannot run:
 * owners, grants, default privileges, session authorization and extension comments. They are left
 * out of the restore only (the backup keeps them), like pg_restore's --no-owner --no-privileges for
 * a plain dump; a verify counts rows, which they do not change. COPY data passes untouched.
 */
export const RESTORE_FILTER: readonly string[] = [
  '/^COPY .* FROM stdin;$/,/^\\\\\\.$/b',
  '/^(ALTER .* OWNER TO .*|ALTER DEFAULT PRIVILEGES .*|GRANT .*|REVOKE .*|(RE)?SET SESSION AUTHORIZATION.*|COMMENT ON EXTENSION .*);$/d',
];

function filterArgs(): string[] {
  return ['-E', ...RESTORE_FILTER.flatMap((expression) => ['-e', expression])];
}

function psqlArgs(url: string): string[] {
  return ['--no-psqlrc', '--quiet', '--no-password', '--set', 'ON_ERROR_STOP=1', '--dbname', url];
}

// Errors that come from the role's rights, not from the dump.
const PRIVILEGE_ERROR = /permission denied|must be (owner|member|superuser)/i;

function privilegeHint(error: string, target: string): string {
  return PRIVILEGE_ERROR.test(error) ? ` (the restore runs as the role of postgres target "${target}"; docs/security.md lists what backup.verify needs)` : '';
}

/**
 * gzip -dc FILE | sed (RESTORE_FILTER) | psql -v ON_ERROR_STOP=1, joined by OS pipes as in
 * checkComplete. When psql stops at an error, gzip and sed die of a broken pipe: psql's own error
 * is then the cause reported, never "corrupt".
 */
async function restore(file: BackupFile, scratchUrl: string, target: string, context: ActionContext): Promise<void> {
  if (file.directory) {
    const restored = await restoreDirectory(file, scratchUrl, context);
    if (restored.code !== 0) throw new Error(`restoring ${file.name} failed (pg_restore exit ${restored.code}): ${restored.error}${privilegeHint(restored.error, target)}`);
    return;
  }
  const libpq = libpqTarget(scratchUrl);
  const [gzip, sed, psql] = await Promise.all([systemBinary('gzip').then(childCommand), systemBinary('sed').then(childCommand), postgresBinary('psql').then(childCommand)]);
  const unzip = spawnClient(gzip, ['-dc', '--', file.path], {}, ['ignore', 'pipe', 'pipe'], context.signal);
  const unzipError = stderrTail(unzip.stderr);
  const unzipExit = exited(unzip);
  const dump = piped(unzip.stdout, 'gzip stdout');
  const filter = spawnClient(sed, filterArgs(), {}, [dump, 'pipe', 'pipe'], context.signal);
  dump.destroy();
  const filterError = stderrTail(filter.stderr);
  const filterExit = exited(filter);
  const sql = piped(filter.stdout, 'sed stdout');
  const child = spawnClient(psql, psqlArgs(libpq.url), libpq.env, [sql, 'ignore', 'pipe'], context.signal);
  sql.destroy();
  const psqlError = stderrTail(child.stderr);
  const [unzipped, filtered, restored] = await Promise.all([unzipExit, filterExit, exited(child)]);
  if (unzipped.code !== 0 && !brokenPipe(unzipped, unzipError())) throw new Error(`backup ${file.name} is corrupt or truncated: ${gzipMessage(unzipError(), file.path)}`);
  if (restored.code !== 0) {
    const error = redactText(psqlError());
    throw new Error(`restoring ${file.name} failed (psql exit ${restored.code ?? restored.signal}): ${error}${privilegeHint(error, target)}`);
  }
  if (filtered.code !== 0) throw new Error(`restoring ${file.name} failed: sed exited with ${filtered.code ?? filtered.signal}: ${filterError()}`);
}

async function sourceCounts(backup: SourcedBackup, context: ActionContext): Promise<{ counts: TableCount[] } | { error: string }> {
  try {
    const client = await context.connections.postgres(backup.source.target, backup.source.database);
    try {
      return { counts: await countRows(client) };
    } finally {
      await client.end();
    }
  } catch (err) {
    return { error: errorMessage(err) };
  }
}

/** The completeness check, the scratch database and the restore, as run (the password travels in PGPASSWORD, never in the URL). */
async function restoreSteps(file: BackupFile, scratch: string, scratchUrl: string): Promise<PlanStep[]> {
  const create: PlanStep = { kind: 'sql', detail: `create database ${quoteIdent(scratch)} template template0` };
  if (file.directory) {
    const pgRestore = await postgresBinary('pg_restore');
    return [
      { kind: 'exec', detail: `${pgRestore} --list ${file.path} (the table of contents must read in full)` },
      create,
      { kind: 'exec', detail: `${pgRestore} ${restoreArgs(scratchUrl, file.path).join(' ')}` },
    ];
  }
  const filter = filterArgs().map((arg) => (arg.startsWith('-') ? arg : `'${arg}'`)).join(' ');
  return [
    { kind: 'exec', detail: `${await systemBinary('gzip')} -dc -- ${file.path} | ${await systemBinary('tail')} -c ${ENDING_BYTES} (the file must decompress and end with "${DUMP_TRAILER}")` },
    create,
    { kind: 'exec', detail: `${await systemBinary('gzip')} -dc -- ${file.path} | ${await systemBinary('sed')} ${filter} | ${await postgresBinary('psql')} ${psqlArgs(scratchUrl).join(' ')}` },
  ];
}

async function newestBackup(backup: SourcedBackup): Promise<BackupFile> {
  const unreadable: string[] = [];
  const onUnreadable = (path: string) => { unreadable.push(path); };
  const newest = await newestValidBackup(await listBackups(backup.dir, backup.pattern, onUnreadable).catch(() => []), Date.now() / 1000, onUnreadable);
  if (!newest) {
    const why = unreadable.length > 0 ? `upkeep's user may not read ${unreadable.join(', ')}` : 'run backup.pg_dump first';
    throw new Error(`no valid backup matching ${backup.pattern} in ${backup.dir}: nothing to verify (${why})`);
  }
  return newest;
}

/** What run() restores, and where: the backup file chosen when planned, into the scratch database named then. */
export interface VerifyPayload {
  readonly file: BackupFile;
  readonly scratch: string;
}

/** What run() restored and compared, journalled and read back by verify. */
export type RestoreOutput = {
  file: string; scratchDatabase: string; droppedStale: string[]; tables: number; rows: number;
  comparedWithSource: boolean; sourceError?: string; problems: Comparison[];
};

export const backupVerify: Action<VerifyParams, VerifyPayload, RestoreOutput> = {
  name: 'backup.verify',
  description: 'Restore the newest backup into a scratch database on the source server, compare per-table row counts with the source, drop the scratch database, and record the verify time.',
  riskClass: 'safe (creates and always drops its own scratch database; reads the source)',
  params: verifyParams,
  risk: () => 'safe',
  // An unknown backup (or one without a source) is refused before the run is queued, as the other
  // families' unknown names are: a manual run gets a 400, an alert is listed as ignored.
  screen: (params, config) => { requireBackup(config, params.backup); },
  async resolve(params, context) {
    requireBackup(context.config, params.backup);
    return params;
  },
  // The same key as backup.pg_dump: no verify while a dump of the same backup is being written.
  lock: backupLock,
  async check(params, context) {
    const newest = await newestBackup(requireBackup(context.config, params.backup));
    return { proceed: true, reason: `newest backup is ${newest.name}`, observed: { file: newest.name, sizeBytes: newest.sizeBytes } };
  },
  async plan(params, context) {
    const backup = requireBackup(context.config, params.backup);
    const newest = await newestBackup(backup);
    const scratch = scratchName(backup.name, new Date(context.now()));
    const scratchUrl = libpqTarget(context.connections.postgresUrl(backup.source.target, scratch)).url;
    const steps: PlanStep[] = [
      { kind: 'sql', detail: `drop database if exists <each leftover ${scratchPrefix(backup.name)}* of a verify that died> with (force)` },
      ...await restoreSteps(newest, scratch, scratchUrl),
      { kind: 'sql', detail: `select count(*) from <each user table> in ${quoteIdent(scratch)} and in ${quoteIdent(backup.source.database)}` },
      { kind: 'sql', detail: `drop database if exists ${quoteIdent(scratch)} with (force)` },
    ];
    return { steps, payload: { file: newest, scratch } };
  },
  async run(params, payload, context) {
    const backup = requireBackup(context.config, params.backup);
    const { file, scratch } = payload;
    const admin = await context.connections.postgres(backup.source.target, MAINTENANCE_DATABASE);
    try {
      const stale = await dropStaleScratch(admin, backup.name);
      await checkComplete(file, context.signal);
      await admin.query(`create database ${quoteIdent(scratch)} template template0`).catch((err: unknown) => { throw withPrivilegeNeeded(err, SCRATCH_NEEDS); });
      try {
        await restore(file, context.connections.postgresUrl(backup.source.target, scratch), backup.source.target, context);
        const restored = await withScratch(context, backup, scratch, countRows);
        const source = await sourceCounts(backup, context);
        const problems = 'counts' in source ? compareCounts(restored, source.counts, params.maxRowDifferenceRatio) : [];
        return {
          detail: {
            file: file.name, scratchDatabase: scratch, droppedStale: stale, tables: restored.length,
            rows: restored.reduce((sum, table) => sum + table.rows, 0),
            comparedWithSource: 'counts' in source, ...('error' in source ? { sourceError: source.error } : {}),
            problems,
          },
        };
      } finally {
        await dropScratch(admin, scratch);
      }
    } finally {
      await admin.end();
    }
  },
  async verify(params, _before, output, context) {
    const backup = requireBackup(context.config, params.backup);
    const { detail } = output;
    const leftover = await withAdmin(context, backup, (admin) => admin.query('select 1 from pg_database where datname = $1', [detail.scratchDatabase]));
    const failures: string[] = [];
    if (leftover.rowCount) failures.push(`scratch database ${detail.scratchDatabase} still exists`);
    if (detail.tables === 0) failures.push('the restore produced no tables');
    for (const problem of detail.problems.slice(0, 20)) failures.push(`${problem.table}: restored ${problem.restored ?? 'missing'}, source ${problem.source ?? 'missing'}`);
    if (failures.length > 0) return { ok: false, detail: `${detail.file}: ${failures.join('; ')}` };
    await recordVerify(context.config.state.dir, backup.name, { timestamp: Date.now() / 1000, file: detail.file });
    const how = detail.comparedWithSource ? 'row counts match the source' : 'source unreachable, catalog sanity check only';
    return { ok: true, detail: `${detail.file} restored: ${detail.tables} tables, ${how}` };
  },
  // Beside the ledger in this replica's state.dir: with replicas, whichever collects the backup reports the verify.
  successRecord(params, output) {
    return { subject: params.backup, detail: output.file };
  },
};

async function withScratch<T>(context: ActionContext, backup: SourcedBackup, scratch: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await context.connections.postgres(backup.source.target, scratch);
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

async function withAdmin<T>(context: ActionContext, backup: SourcedBackup, work: (client: pg.Client) => Promise<T>): Promise<T> {
  return withScratch(context, backup, MAINTENANCE_DATABASE, work);
}
