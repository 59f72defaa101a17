/**
 * What one queued alert with a 1 MB label costs: 20 such alerts (each its own label) go through
 * POST /alertmanager while the only worker is busy, so they wait in the queue; the heap grows by
 * the printed amount per alert (after a full GC). A rule templates the label into a param, as
 * `table: "{{labels.table}}"` does. Proportional means about 1 MB: the label held once. Then
 * the worker is released, every run finishes, and what the heap still holds of them is printed
 * (the journal used to keep every record in memory for ever).
 *   node --expose-gc --import tsx bench/alert-labels.ts
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { configSchema } from '../src/config/schema.js';
import { createLogger } from '../src/log.js';
import type { Action } from '../src/actions/contract.js';
import { buildApp } from '../src/server.js';

const LABEL_BYTES = 1024 * 1024;
const ALERTS = 20;
const MB = 1024 * 1024;

function collect(): void {
  if (typeof globalThis.gc !== 'function') throw new Error('run with node --expose-gc');
  globalThis.gc();
  globalThis.gc();
}

// Holds the one worker until released, so every other run stays queued.
let release: () => void = () => undefined;
const busy = new Promise<void>((resolve) => { release = resolve; });
const blocker: Action<{ table: string }> = {
  name: 'test.hold', description: 'waits', params: z.object({ table: z.string() }), risk: () => 'safe',
  resolve: async (params) => params, lock: () => ({ kind: 'local', key: 'hold' }),
  check: async () => ({ proceed: true, reason: 'go' }), plan: async () => ({ steps: [{ kind: 'exec', detail: 'wait' }], payload: null }),
  run: async () => { await busy; return { detail: {} }; }, verify: async () => ({ ok: true, detail: 'ok' }),
};

const dir = await mkdtemp(join(tmpdir(), 'upkeep-labels-'));
const config = configSchema.parse({
  state: { dir }, server: { bodyLimitBytes: 4 * MB },
  collectors: { disabled: ['disks', 'backups', 'logs', 'http', 'postgres', 'redis', 'docker'] },
  remediation: { concurrency: 1, cooldownSeconds: 0, rules: [{ match: { alertname: 'Big' }, remediation: 'test.hold', params: { table: '{{labels.table}}' } }] },
});
const app = await buildApp({ config, log: createLogger({ level: 'warn' }), collectors: [], actions: [blocker] });
const post = async (n: number) => {
  const labels = { alertname: 'Big', table: `${n}`.padEnd(LABEL_BYTES, 'x') };
  const payload = { version: '4', status: 'firing', receiver: 'upkeep', groupKey: 'g', groupLabels: {}, commonLabels: {}, commonAnnotations: {}, externalURL: 'http://am', alerts: [{ status: 'firing', labels, annotations: {}, startsAt: '2024-01-01T00:00:00Z', endsAt: '0001-01-01T00:00:00Z', generatorURL: '', fingerprint: `f${n}` }] };
  const reply = await app.fastify.inject({ method: 'POST', url: '/alertmanager', payload: JSON.stringify(payload), headers: { 'content-type': 'application/json' } });
  if (reply.statusCode !== 202) throw new Error(`${reply.statusCode} ${reply.body.slice(0, 300)}`);
};
try {
  await post(0); // takes the worker
  await new Promise((resolve) => setTimeout(resolve, 200));
  collect();
  const before = process.memoryUsage().heapUsed;
  for (let n = 1; n <= ALERTS; n += 1) await post(n);
  await new Promise((resolve) => setTimeout(resolve, 500));
  collect();
  const after = process.memoryUsage().heapUsed;
  process.stdout.write(`${ALERTS} queued alerts with a ${LABEL_BYTES / MB} MB label: heap +${((after - before) / MB).toFixed(1)} MB, ${((after - before) / ALERTS / MB).toFixed(2)} MB per alert\n`);
  release();
  const succeeded = z.object({ runs: z.array(z.object({ id: z.string() })) });
  for (let waited = 0; waited < 300; waited += 1) {
    const page = succeeded.parse((await app.fastify.inject({ method: 'GET', url: '/runs?status=success&limit=100' })).json());
    if (page.runs.length === ALERTS + 1) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  collect();
  const finished = process.memoryUsage().heapUsed;
  process.stdout.write(`after all ${ALERTS + 1} runs finished: heap +${((finished - before) / MB).toFixed(1)} MB over the one running alert\n`);
} finally {
  release();
  await app.fastify.close();
  await rm(dir, { recursive: true, force: true });
}
