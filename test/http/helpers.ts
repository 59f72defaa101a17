import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { configSchema, type Config } from '../../src/config/schema.js';
import type { Logger } from '../../src/log.js';
import { runRecordSchema } from '../../src/engine/journal.js';
import type { RunRecord } from '../../src/engine/journal.js';
import { buildApp, type App } from '../../src/server.js';
import { bufferLogger, type BufferLogger } from '../fixtures/log.js';
import { waitFor } from '../fixtures/ports.js';
import type { PostgresServer } from '../fixtures/postgres.js';

/** A fresh state dir, removed at teardown. */
export async function tempDir(t: { teardown(fn: () => unknown): void }, prefix = 'upkeep-state-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export const VACUUM_RULE = {
  match: { alertname: 'PostgresDeadTuplesHigh' },
  remediation: 'postgres.vacuum',
  params: { target: '{{labels.target}}', database: '{{labels.database}}', table: '{{labels.schema}}.{{labels.table}}' },
};

/** A validated config: the given object over a quiet base (no collectors, no cooldown). */
// In-process tests run the actions' steps inline unless they ask for the thread: under the
// TypeScript loader each executor thread compiles every module again (seconds of CPU per engine).
// The thread is tested by test/engine/executor-thread.test.ts and, as users run it (the default),
// by every test of the installed package in test/product/.
export function testConfig(raw: Record<string, unknown>): Readonly<Config> {
  const remediation = { cooldownSeconds: 0, executor: 'inline', ...(raw.remediation as Record<string, unknown> | undefined) };
  // An app closed at a test's end with a run still in flight would wait the default 8 s grace for it.
  const server = { shutdownTimeoutSeconds: 1, ...(raw.server as Record<string, unknown> | undefined) };
  return configSchema.parse({ collectors: { disabled: ['disks', 'backups', 'logs', 'http', 'postgres', 'redis', 'docker'] }, ...raw, remediation, server });
}

/** A logger whose output is kept in memory, for tests that grep it; at debug unless told. */
export function capturedLogger(level = 'debug'): BufferLogger {
  return bufferLogger(level);
}

export async function startApp(t: { teardown(fn: () => unknown): void }, config: Readonly<Config>, log: Logger = bufferLogger().log): Promise<App> {
  const app = await buildApp({ config, log, collectors: [] });
  t.teardown(() => app.fastify.close());
  return app;
}

export { webhookPayload } from '../fixtures/webhook-payload.js';

const webhookReply = z.object({
  accepted: z.array(z.object({ runId: z.string(), remediation: z.string(), status: z.string(), fingerprint: z.string() })),
  ignored: z.array(z.object({ reason: z.string(), fingerprint: z.string(), remediation: z.string().optional(), runId: z.string().optional() })),
});

export async function postWebhook(app: App, payload: unknown, token?: string) {
  const response = await app.fastify.inject({
    method: 'POST', url: '/alertmanager', payload: JSON.stringify(payload),
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
  });
  return { statusCode: response.statusCode, headers: response.headers, body: response.statusCode === 202 ? webhookReply.parse(response.json()) : null, raw: response.body };
}

const FINISHED = new Set(['success', 'failure', 'skipped', 'dry_run', 'interrupted', 'duplicate', 'cancelled', 'rejected']);

/** Polls GET /runs/:id until the run has finished. */
export async function finishedRun(app: App, runId: string): Promise<RunRecord> {
  return waitFor(`run ${runId}`, async () => {
    const response = await app.fastify.inject({ method: 'GET', url: `/runs/${runId}` });
    const record = runRecordSchema.parse(response.json());
    if (!FINISHED.has(record.status)) throw new Error(`still ${record.status}`);
    return record;
  }, 60_000, 50);
}

/** The journal's lines, parsed: every segment (`journal/runs-NNNNNNNN.jsonl`), oldest first. */
export async function journalLines(stateDir: string): Promise<RunRecord[]> {
  const dir = join(stateDir, 'journal');
  const segments = (await readdir(dir)).filter((name) => /^runs-\d{8}\.jsonl$/.test(name)).sort();
  const lines: RunRecord[] = [];
  for (const segment of segments) {
    const text = await readFile(join(dir, segment), 'utf8');
    for (const line of text.split('\n')) if (line.trim() !== '') lines.push(runRecordSchema.parse(JSON.parse(line)));
  }
  return lines;
}

/** An app on a temporary state dir, watching the "app" database of `server` as postgres target "main". */
export async function startMainApp(t: { teardown(fn: () => unknown): void }, server: PostgresServer, rest: Record<string, unknown> = {}): Promise<App> {
  return startApp(t, testConfig({ state: { dir: await tempDir(t) }, targets: { postgres: [{ name: 'main', url: server.url('app') }] }, ...rest }));
}
