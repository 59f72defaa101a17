import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { z } from 'zod';
import { waitFor } from '../fixtures/ports.js';
import { webhookPayload } from '../fixtures/webhook-payload.js';
import { writeConfig } from './installed.js';

const runSummary = z.object({ id: z.string(), status: z.string(), trigger: z.string(), alert: z.object({ fingerprint: z.string() }).optional() });
const page = z.object({ runs: z.array(runSummary), next: z.string().nullable() });
export type RunSummary = z.infer<typeof runSummary>;

export const FINAL = new Set(['success', 'failure', 'skipped', 'dry_run', 'interrupted', 'duplicate', 'cancelled', 'rejected']);

/** POSTs an Alertmanager payload to the server at `base`: its status and its JSON reply. */
export async function postAlerts(base: string, payload: unknown): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${base}/alertmanager`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(payload) });
  return { status: response.status, body: await response.json() as unknown };
}

/** Every run in the journal through GET /runs, following `next` page by page. */
export async function allRuns(base: string): Promise<RunSummary[]> {
  const runs: RunSummary[] = [];
  let url: string | null = `${base}/runs?limit=1000`;
  while (url !== null) {
    const response: Response = await fetch(url);
    if (response.status !== 200) throw new Error(`GET ${url}: ${response.status} ${await response.text()}`);
    const reply: z.infer<typeof page> = page.parse(await response.json());
    runs.push(...reply.runs);
    url = reply.next === null ? null : `${base}/runs?limit=1000&cursor=${encodeURIComponent(reply.next)}`;
  }
  return runs;
}

/** The resident set size of a process, in bytes, from /proc/PID/status. */
export async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!match) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/** A config (as an object) whose DiskUsageHigh alerts queue a dry run of files.cleanup on a scratch directory. */
export async function dryRunSettings(t: Test): Promise<Record<string, unknown>> {
  const files = await mkdtemp(join(tmpdir(), 'upkeep-dry-files-'));
  t.teardown(() => rm(files, { recursive: true, force: true }));
  return {
    targets: { files: [{ name: 'scratch', dir: files }] },
    remediation: {
      dryRun: true,
      rules: [{ match: { alertname: 'DiskUsageHigh' }, remediation: 'files.cleanup', params: { name: 'scratch' }, allowRisk: 'destructive' }],
      windows: [{ name: 'always', cron: '* * * * *', durationMinutes: 1440 }],
    },
  };
}

/** The same, written to a config file. */
export async function dryRunConfig(t: Test): Promise<{ file: string; dir: string }> {
  return writeConfig(t, await dryRunSettings(t));
}

/** Every run, once the newest has finished as a dry run. */
export function untilDryRun(base: string): Promise<RunSummary[]> {
  return waitFor('the run to finish', async () => {
    const runs = await allRuns(base);
    if (runs[0]?.status !== 'dry_run') throw new Error(`runs: ${JSON.stringify(runs.map((run) => run.status))}`);
    return runs;
  });
}

/** Posts one DiskUsageHigh alert with `fingerprint` and waits until its dry run is journalled. */
export async function oneDryRun(base: string, fingerprint: string): Promise<void> {
  const payload = await webhookPayload({ labels: { alertname: 'DiskUsageHigh', path: '/' }, fingerprint });
  const { status } = await postAlerts(base, payload);
  if (status !== 202) throw new Error(`the alert got ${status}`);
  await untilDryRun(base);
}
