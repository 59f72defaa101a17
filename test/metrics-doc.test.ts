import { readFile } from 'node:fs/promises';
import t from 'tap';
import { configSchema } from '../src/config/schema.js';
import { buildApp } from '../src/server.js';
import { bufferLogger } from './fixtures/log.js';
import { tempDir } from './http/helpers.js';

// docs/metrics.md lists every family upkeep exports, and nothing it does not; docs/comparison.md names only real ones.

t.test('docs/metrics.md lists exactly the families /metrics declares', async (t) => {
  const app = await buildApp({ config: configSchema.parse({ state: { dir: await tempDir(t) } }), log: bufferLogger('info').log });
  t.teardown(() => app.fastify.close());
  const exposition = (await app.fastify.inject({ url: '/metrics' })).body;
  const exported = new Set([...exposition.matchAll(/^# TYPE (\S+) /gm)].map((match) => match[1] ?? ''));
  const doc = await readFile(new URL('../docs/metrics.md', import.meta.url), 'utf8');
  const documented = new Set([...doc.matchAll(/^\| `(upkeep_[a-z0-9_]+)` \|/gm)].map((match) => match[1] ?? ''));
  t.ok(exported.size > 100, `${exported.size} families exported`);
  t.same([...exported].filter((name) => !documented.has(name)).sort(), [], 'every exported family is documented');
  t.same([...documented].filter((name) => !exported.has(name)).sort(), [], 'every documented family is exported');
  const compared = await readFile(new URL('../docs/comparison.md', import.meta.url), 'utf8');
  const named = new Set([...compared.matchAll(/\b(upkeep_[a-z0-9_]+)/g)].map((match) => match[1] ?? ''));
  t.ok(named.size > 40, `${named.size} families in docs/comparison.md`);
  t.same([...named].filter((name) => !exported.has(name)).sort(), [], 'docs/comparison.md names only families upkeep exports');
});
