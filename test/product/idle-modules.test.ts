import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { z } from 'zod';
import { tempDir } from '../http/helpers.js';
import { installedPackage, serveInstalled, writeConfig } from './installed.js';
import { probeInstalled } from './probe.js';

/**
 * What an idle `serve` has loaded costs memory for its whole life (docs/performance.md, "Idle
 * memory"). A probe preloaded into the installed server with `--require` lists node's modules and
 * the CommonJS packages it loaded once /healthz answers: the TLS and HTTP/2 stacks Fastify asks for
 * (scripts/build.ts loads them on first use), node's crypto and zlib, and the drivers of targets
 * that are not configured (src/lazy.ts) are not among them.
 */
const PROBE = `
const { existsSync, writeFileSync } = require('node:fs');
const timer = setInterval(() => {
  if (!existsSync(process.env.PROBE_OUT + '.go')) return;
  clearInterval(timer);
  writeFileSync(process.env.PROBE_OUT, JSON.stringify({ builtins: process.moduleLoadList, packages: Object.keys(require.cache) }));
}, 50);
timer.unref();
`;
const loaded = z.object({ builtins: z.array(z.string()), packages: z.array(z.string()) });

/** A disk, a backups directory and a log directory, as in examples/minimal.yml. */
function minimalTargets(files: string) {
  return { disks: [{ path: '/' }], backups: [{ name: 'local', dir: files, pattern: '*.sql.gz' }], logs: [{ name: 'here', dir: files, pattern: '*.log' }] };
}

t.test('the installed serve, idle with disk, backup and log targets, has not loaded TLS, HTTP/2, crypto, zlib or a driver', async (t) => {
  // A directory of its own for the backups and logs: the shared temporary directory may hold anything.
  const files = await tempDir(t, 'upkeep-idle-');
  const text = await probeInstalled(t, { targets: minimalTargets(files) }, PROBE, {
    // Uncompressed: a gzipped scrape loads zlib, as Prometheus's first scrape does; it is then part of a scraped serve, not of an idle one.
    before: async (served) => { t.equal((await fetch(`${served.base}/metrics`, { headers: { 'accept-encoding': 'identity' } })).status, 200, 'a scrape first, so the collectors have run'); },
  });
  const { builtins, packages } = loaded.parse(JSON.parse(text));
  t.ok(builtins.includes('NativeModule http'), 'the probe sees what the server loaded (node:http)');
  t.same(builtins.filter((name) => /^NativeModule (https|http2|tls|_tls_wrap|internal\/http2\/core|internal\/deps\/undici\/undici)$/.test(name)), [], 'no TLS, HTTP/2 or fetch');
  t.same(builtins.filter((name) => /^NativeModule (crypto|zlib)$/.test(name)), [], 'no crypto or zlib');
  t.same(packages.filter((path) => /node_modules\/(pg|ioredis|dockerode)\//.test(path)), [], 'no PostgreSQL, Redis or Docker client');
});

/** The functions V8's optimizing compiler finished, from `--trace-opt` lines. */
function optimized(output: string): string[] {
  return [...output.matchAll(/^\[completed optimizing .*?<JSFunction (\S+)/gm)].map((match) => match[1] ?? '');
}

t.test('the installed serve, started and idle, has optimized no function', async (t) => {
  // One optimized function pages in most of the optimizing compiler's code, about 4 MB of an idle
  // serve's RSS. Start-up stays below V8's threshold because the bundle is one file (node resolves
  // no imports between chunks) and the schemas of remediations, PostgreSQL catalog rows and Docker
  // replies are built on first use (docs/performance.md, "One file, and schemas built on first use").
  const files = await tempDir(t, 'upkeep-idle-');
  const { file, dir } = await writeConfig(t, { targets: minimalTargets(files), collectors: { timeoutSeconds: 5 } });
  const trace = join(dir, 'trace-opt.cjs');
  await writeFile(trace, "require('node:v8').setFlagsFromString('--trace-opt');\n");
  const served = await serveInstalled(t, file, { env: { NODE_OPTIONS: `--require ${trace}` } });
  // The bench reads the idle RSS one second after the first /healthz (bench/startup.ts).
  await sleep(1500);
  const idle = optimized(served.output());
  for (let i = 0; i < 40; i++) t.equal((await fetch(`${served.base}/metrics`)).status, 200);
  t.equal(await served.stop(), 0, 'the server stops cleanly');
  t.same(idle, [], 'nothing optimized while it started and idled');
  t.ok(optimized(served.output()).length > 0, 'the trace works: scrapes do make optimized code');
});

t.test('the installed build leaves out what Fastify would only use for ajv schemas or inject', async (t) => {
  const dist = join(await installedPackage(), 'node_modules', 'upkeep', 'dist');
  const files = (await readdir(dist)).filter((name) => name.endsWith('.js'));
  const texts = await Promise.all(files.map((name) => readFile(join(dist, name), 'utf8')));
  t.ok(texts.some((text) => text.includes('node_modules/fastify/fastify.js')), 'the bundle names the packages it holds (fastify)');
  const held = (name: string) => files.filter((_, at) => texts[at]?.includes(`node_modules/${name}/`));
  t.same(held('ajv'), [], 'no ajv');
  t.same(held('@fastify/ajv-compiler'), [], 'no ajv compiler');
  t.same(held('light-my-request'), [], 'no light-my-request');
  t.ok(texts.some((text) => text.includes("@fastify/ajv-compiler is not in upkeep's build")), 'a stand-in that says so if called');
});
