// The logs collector in a process of its own, so that test/collectors/logs.test.ts can run it as
// an unprivileged user (root reads a chmod 000 directory anyway). Usage:
//   node --import=test/loader/register.mjs test/collectors/logs-child.ts app|reader CONFIG_YAML
// Each line on stdin is a request, `scrape` (app: GET /metrics and /readyz) or `read` (reader: one
// logDirReader call for the config's first log target); each gets one JSON line on stdout, with
// the log lines written since the last answer.
import { createInterface } from 'node:readline';
import { logDirReader } from '../../src/collectors/logs.js';
import { parseConfig } from '../../src/config/load.js';
import { buildApp } from '../../src/server.js';
import { bufferLogger } from '../fixtures/log.js';

const [mode, yaml = ''] = process.argv.slice(2);
const parsed = parseConfig(yaml, {});
if (!parsed.ok) throw new Error(parsed.errors.map((e) => `${e.path}: ${e.message}`).join('\n'));
const logger = bufferLogger();
let logged = 0;
const newLogs = (): Record<string, unknown>[] => {
  const lines = logger.lines();
  const fresh = lines.slice(logged);
  logged = lines.length;
  return fresh;
};

const app = mode === 'app' ? await buildApp({ config: parsed.config, log: logger.log }) : null;
const target = parsed.config.targets.logs[0];
if (!target) throw new Error('no log target in the config');
const read = logDirReader(target, logger.log);

async function answer(request: string): Promise<Record<string, unknown>> {
  if (request === 'read') return { reading: await read() };
  if (request === 'scrape' && app) {
    const metrics = (await app.fastify.inject({ url: '/metrics' })).body;
    const readyz: unknown = (await app.fastify.inject({ url: '/readyz' })).json();
    return { metrics, readyz };
  }
  throw new Error(`unknown request ${request} in mode ${mode}`);
}

for await (const request of createInterface({ input: process.stdin })) {
  const reply = await answer(request.trim());
  process.stdout.write(`${JSON.stringify({ ...reply, logs: newLogs() })}\n`);
}
await app?.fastify.close();
