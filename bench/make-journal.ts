/**
 * Writes a state dir whose journal holds N runs, fast, in the file store's own format: sealed
 * segments of 20,000 runs with their indexes, a last segment still being written (no index,
 * as after a restart), and the guards' snapshot with the alert claims of the last 7 days.
 * Each run has its queued line and its final line; runs are spread evenly over `--days` up to
 * now, with a realistic mix of remediations, triggers and outcomes (alert runs carry labels).
 *   node --import tsx bench/make-journal.ts --runs 2000000 --state-dir /tmp/upkeep-2m [--days 30]
 * Used by bench/journal.ts and test/product/journal.test.ts.
 *
 * Speed: one segment's worth of lines is built once as a template with fixed-width
 * placeholders; each segment is that buffer with its ids, times and fingerprints stamped in.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { idempotencyKey } from '../src/engine/guards/idempotency.js';
import type { RunStatus } from '../src/engine/journal.js';
import type { Trigger } from '../src/actions/contract.js';
import { JOURNAL_LIMITS, segmentName } from '../src/engine/state/file-journal.js';
import { CLAIM_LIMIT, CLAIM_TTL_MS, claimKey } from '../src/engine/state/guard-file.js';
import { newRunId } from '../src/engine/state/run-id.js';
import { encodeEntries, encodeHeader, ENTRY_BYTES, setEntryKey, summarise, type IndexEntry } from '../src/engine/state/segment-index.js';

export interface MadeJournal {
  readonly runs: number;
  readonly bytes: number;
  readonly segments: number;
  /** Final states by trigger, status and remediation, to check a listing against. */
  readonly byTrigger: Readonly<Record<string, number>>;
  readonly byStatus: Readonly<Record<string, number>>;
  readonly byRemediation: Readonly<Record<string, number>>;
  /** A few run ids, oldest to newest, for GET /runs/:id. */
  readonly sampleIds: readonly string[];
  readonly newestId: string;
}

const REMEDIATIONS = ['postgres.vacuum', 'postgres.vacuum', 'postgres.vacuum', 'postgres.analyze', 'redis.bgsave', 'backup.pg_dump', 'docker.prune', 'logs.rotate', 'redis.expire_keys', 'files.cleanup'];
const TRIGGERS: readonly Trigger[] = ['alert', 'alert', 'alert', 'alert', 'schedule', 'schedule', 'schedule', 'manual', 'manual', 'cli'];
const STATUSES: readonly RunStatus[] = [...Array<RunStatus>(16).fill('success'), 'skipped', 'skipped', 'failure', 'dry_run', 'duplicate', 'rejected'];

// Fixed-width placeholders, replaced in every segment: an id (36), ISO times (24), a fingerprint (16).
const ID = 'IIIIIIII-IIII-IIII-IIII-IIIIIIIIIIII';
const QUEUED = 'Q'.repeat(24);
const FINISHED = 'F'.repeat(24);
const STARTS = 'S'.repeat(24);
const PRINT = 'P'.repeat(16);
const PLACEHOLDERS = [ID, QUEUED, FINISHED, STARTS, PRINT] as const;
const FINISH_AFTER_MS = 1500;
const STARTS_BEFORE_MS = 60_000;

// Deterministic, so two journals of the same size hold the same mix.
function pick<T>(list: readonly T[], n: number, salt: number): T {
  // The high bits of a multiplicative hash, so picks with different salts are independent.
  return list[Math.floor(((Math.imul(n + 1, salt) >>> 0) / 2 ** 32) * list.length)] as T;
}

const DAY_MS = 86_400_000;
const two = (n: number) => (n < 10 ? `0${n}` : String(n));
let isoDay = Number.NaN;
let isoDate = '';
/** `Date#toISOString` for the times of one day after another, with the date part made once a day: toISOString was a fifth of this file's time. */
export function iso(ms: number): string {
  const day = Math.floor(ms / DAY_MS) * DAY_MS;
  if (day !== isoDay) {
    isoDay = day;
    isoDate = new Date(day).toISOString().slice(0, 11);
  }
  const inDay = ms - day;
  const millis = inDay % 1000;
  return `${isoDate}${two(Math.floor(inDay / 3_600_000))}:${two(Math.floor(inDay / 60_000) % 60)}:${two(Math.floor(inDay / 1000) % 60)}.${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}Z`;
}

interface TemplateRun {
  readonly lines: string;
  readonly entry: Omit<IndexEntry, 'time' | 'id' | 'offset'> & { readonly offsetInRun: number };
  readonly alert: boolean;
}

function templateRun(k: number, queuedLines: boolean): TemplateRun {
  const remediation = pick(REMEDIATIONS, k, 0x9e3779b1);
  const trigger = pick(TRIGGERS, k, 0x85ebca6b);
  const status = pick(STATUSES, k, 0xc2b2ae35);
  const table = `orders_${k % 200}`;
  const params = remediation.startsWith('postgres') ? `{"target":"main","database":"app","table":"public.${table}"}` : '{"target":"cache"}';
  const alert = trigger === 'alert'
    ? `,"alert":{"fingerprint":"${PRINT}","startsAt":"${STARTS}","alertname":"PostgresDeadTuplesHigh","labels":{"alertname":"PostgresDeadTuplesHigh","target":"main","database":"app","schema":"public","table":"${table}","severity":"warning"}},"source":"remediation.rules[0]"`
    : trigger === 'schedule' ? ',"source":"schedule:nightly"' : '';
  const head = `{"id":"${ID}","remediation":"${remediation}","trigger":"${trigger}"`;
  const tail = `"params":${params}${alert},"queuedAt":"${QUEUED}","dryRun":${status === 'dry_run'},"host":"bench","pid":4242`;
  const executed = status === 'success' || status === 'failure' || status === 'dry_run';
  const outcome = executed
    ? `,"startedAt":"${QUEUED}","risk":"safe","lockKey":"${remediation} postgres:main/app:${table}","check":{"proceed":true,"reason":"412 dead tuples"},"plan":[{"kind":"sql","detail":"VACUUM (ANALYZE) \\"public\\".\\"${table}\\""}]`
      + (status === 'dry_run' ? ',"reason":"dry run: nothing was executed"' : `,"output":{"statements":1},"verification":{"ok":${status === 'success'},"detail":"public.${table}: dead tuples 412 -> ${status === 'success' ? 0 : 412}"}`)
      + (status === 'failure' ? ',"error":"verification failed: dead tuples did not fall"' : '')
    : `,"reason":"${status === 'skipped' ? 'condition cleared: 0 dead tuples' : status === 'duplicate' ? 'alert already handled' : 'invalid params'}"`;
  const queuedLine = `${head},"status":"queued",${tail}}\n`;
  const finalLine = `${head},"status":"${status}",${tail}${outcome},"finishedAt":"${FINISHED}"}`;
  const before = queuedLines ? queuedLine : '';
  return { lines: `${before}${finalLine}\n`, entry: { status, trigger, remediation, offsetInRun: before.length, length: finalLine.length }, alert: trigger === 'alert' && status !== 'duplicate' };
}

/** One segment's lines with placeholders, where each placeholder sits, and where each run starts. */
function buildTemplate(runs: number, queuedLines: boolean) {
  const made = Array.from({ length: runs }, (_, k) => templateRun(k, queuedLines));
  // Every character is ASCII: a string's length is its byte length.
  const buffer = Buffer.from(made.map((run) => run.lines).join(''), 'latin1');
  const runStarts: number[] = [];
  let at = 0;
  for (const run of made) {
    runStarts.push(at);
    at += run.lines.length;
  }
  runStarts.push(at);
  const slots = PLACEHOLDERS.map((placeholder) => {
    const positions: number[] = [];
    const needle = Buffer.from(placeholder, 'latin1');
    for (let found = buffer.indexOf(needle); found !== -1; found = buffer.indexOf(needle, found + needle.length)) positions.push(found);
    return positions;
  });
  return { made, buffer, runStarts, slots };
}

/**
 * Writes the journal (and guards' snapshot) of `runs` runs under `stateDir`, replacing what was
 * there. `queuedLines: false` writes only each run's final line: half the bytes, the same runs.
 */
export async function makeJournal(options: { stateDir: string; runs: number; days?: number; now?: number; queuedLines?: boolean }): Promise<MadeJournal> {
  const { stateDir, runs } = options;
  const now = options.now ?? Date.now();
  const spanMs = (options.days ?? 30) * 86_400_000;
  const journalDir = join(stateDir, 'journal');
  await rm(journalDir, { recursive: true, force: true });
  await rm(join(stateDir, 'guards'), { recursive: true, force: true });
  await mkdir(journalDir, { recursive: true });
  const perSegment = Math.min(JOURNAL_LIMITS.segmentRuns, runs);
  const template = buildTemplate(perSegment, options.queuedLines ?? true);
  const entries: IndexEntry[] = template.made.map((run, k) => ({ ...run.entry, time: 0, id: '', offset: (template.runStarts[k] ?? 0) + run.entry.offsetInRun }));
  // Counts per status, trigger and remediation of the first `count` runs of the template (ids are stamped later).
  const summaryOf = (count: number) => summarise(entries.slice(0, count).map((entry) => ({ ...entry, id: newRunId(0) })));
  const summary = summaryOf(perSegment);
  const entryBuffer = encodeEntries({ ...summary, version: 1, bytes: 0, lastLineMs: 0, open: [], skippedLines: 0 }, entries);
  // The last segment is the one being written: a few thousand runs, read at start.
  const tailRuns = Math.min(runs, 5000);
  const counts = { byTrigger: {} as Record<string, number>, byStatus: {} as Record<string, number>, byRemediation: {} as Record<string, number> };
  const sampleIds: string[] = [];
  const claims: string[] = [];
  const claimsSince = now - CLAIM_TTL_MS;
  const sampleEvery = Math.max(1, Math.floor(runs / 20));
  let bytes = 0;
  let segments = 0;
  let newestId = '';
  // Two copies of the template: one is written out while the next segment is stamped into the other.
  const buffers = [template.buffer, Buffer.from(template.buffer)];
  let writing: Promise<void> = Promise.resolve();
  for (let first = 0; first < runs; segments += 1) {
    const count = runs - first <= tailRuns ? runs - first : Math.min(perSegment, runs - tailRuns - first);
    const buffer = buffers[segments % 2] ?? template.buffer;
    const stamp = new Array<number>(PLACEHOLDERS.length).fill(0);
    let minKey = { time: 0, id: '' };
    let lastLineMs = 0;
    for (let k = 0; k < count; k += 1) {
      const n = first + k;
      const queuedMs = now - spanMs + Math.floor((n * spanMs) / runs);
      const id = newRunId(queuedMs);
      const end = template.runStarts[k + 1] ?? 0;
      let fingerprint = '';
      let startsAt = '';
      for (let slot = 0; slot < PLACEHOLDERS.length; slot += 1) {
        const positions = template.slots[slot] ?? [];
        let next = stamp[slot] ?? 0;
        if (next >= positions.length || (positions[next] ?? 0) >= end) continue;
        let value = id;
        if (slot === 1) value = iso(queuedMs);
        else if (slot === 2) value = iso(queuedMs + FINISH_AFTER_MS);
        else if (slot === 3) value = startsAt = iso(queuedMs - STARTS_BEFORE_MS);
        else if (slot === 4) value = fingerprint = (Math.imul(n, 2654435761) >>> 0).toString(16).padStart(16, '0');
        for (; next < positions.length && (positions[next] ?? 0) < end; next += 1) buffer.write(value, positions[next] ?? 0, 'latin1');
        stamp[slot] = next;
      }
      setEntryKey(entryBuffer, k, { time: queuedMs, id });
      if (k === 0) minKey = { time: queuedMs, id };
      lastLineMs = queuedMs + FINISH_AFTER_MS;
      const { entry, alert } = template.made[k] ?? templateRun(k, true);
      counts.byTrigger[entry.trigger] = (counts.byTrigger[entry.trigger] ?? 0) + 1;
      counts.byStatus[entry.status] = (counts.byStatus[entry.status] ?? 0) + 1;
      counts.byRemediation[entry.remediation] = (counts.byRemediation[entry.remediation] ?? 0) + 1;
      if (alert && queuedMs >= claimsSince) claims.push(JSON.stringify(['claim', claimKey(idempotencyKey({ fingerprint, startsAt, alertname: '', labels: {} }, entry.remediation)), id, queuedMs]));
      if (n % sampleEvery === 0) sampleIds.push(id);
      newestId = id;
    }
    const length = template.runStarts[count] ?? 0;
    const seq = segments + 1;
    const index = first + count < runs
      ? Buffer.concat([encodeHeader({ ...(count === perSegment ? summary : summaryOf(count)), version: 1, bytes: length, lastLineMs, open: [], skippedLines: 0, minKey, maxKey: { time: lastLineMs - FINISH_AFTER_MS, id: newestId } }), entryBuffer.subarray(0, count * ENTRY_BYTES)])
      : null;
    await writing;
    writing = (async () => {
      await writeFile(join(journalDir, segmentName(seq, 'jsonl')), buffer.subarray(0, length));
      if (index) await writeFile(join(journalDir, segmentName(seq, 'idx')), index);
    })();
    bytes += length;
    first += count;
  }
  await writing;
  await mkdir(join(stateDir, 'guards'), { recursive: true });
  await writeFile(join(stateDir, 'guards', 'snapshot.jsonl'), claims.length === 0 ? '' : `${claims.slice(-CLAIM_LIMIT).join('\n')}\n`);
  return { runs, bytes, segments, ...counts, sampleIds, newestId };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '2000000' }, 'state-dir': { type: 'string' }, days: { type: 'string', default: '30' } } });
  const stateDir = values['state-dir'];
  if (!stateDir) throw new Error('--state-dir DIR is required');
  const started = performance.now();
  const made = await makeJournal({ stateDir, runs: Number(values.runs), days: Number(values.days) });
  const seconds = (performance.now() - started) / 1000;
  console.log(`${made.runs} runs, ${made.segments} segments, ${(made.bytes / 1024 / 1024).toFixed(0)} MiB in ${stateDir}/journal, in ${seconds.toFixed(1)} s`);
}
