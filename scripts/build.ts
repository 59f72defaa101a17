/**
 * Builds dist/ for the package: the sources bundled into one ES module per entry (the CLI and the
 * executor thread), with the pure-JavaScript dependencies inside. `npm run build` (and so
 * `npm pack`) runs it; `npm test` type-checks with tsc.
 *
 * Why a bundle rather than one compiled file per source: node loads each ES module file on its
 * own, and upkeep's ~400 files (its own, zod's, yaml's, fastify's) cost about 300 ms of start-up and
 * their source text stays in the heap. Bundled, `serve` with examples/minimal.yml answers /healthz
 * about 300 ms sooner and idles about 7 MB lighter (docs/performance.md, "A bundle: start-up and
 * idle memory").
 *
 * All output lands flat in dist/, so a module's place relative to the package root is the same as
 * in src/ for the two that look for files beside them: src/version.ts (../package.json) and
 * src/engine/executor-thread.ts (./executor-worker.js, the thread's entry, an entry point here).
 */
import { rename, rm } from 'node:fs/promises';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

// Loaded on first use by src/lazy.ts with require(), so a process without such targets never
// loads them; bundling them would make that load a part of start-up. They stay dependencies.
const EXTERNAL = ['pg', 'ioredis', 'dockerode'];

/**
 * zod's classic API exports `locales`, every language's error messages (about 350 kB of the
 * bundle), and sets English. upkeep writes its own messages from the issues (src/zod-issues.ts),
 * so only English is bundled.
 */
const zodEnglishOnly: Plugin = {
  name: 'zod-english-only',
  setup(builder) {
    builder.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      args.importer.includes(join('node_modules', 'zod')) ? { path: join(args.resolveDir, '../locales/en.js'), namespace: 'zod-english' } : undefined);
    builder.onLoad({ filter: /.*/, namespace: 'zod-english' }, (args) =>
      ({ contents: `export { default as en } from ${JSON.stringify(args.path)};`, resolveDir: dirname(args.path) }));
  },
};

/**
 * Fastify's lib/server.js requires node:https and node:http2 when it loads, for servers upkeep
 * never makes (it serves plain HTTP/1.1). http2 alone loads tls, the whole of crypto and
 * readline: about 0.7 MB of an idle `serve`'s RSS (docs/performance.md, "Idle memory, 2026-12-02").
 * There they are loaded on first use instead.
 */
const LAZY_BUILTINS = /^node:(https|http2)$/;
const lazyBuiltins: Plugin = {
  name: 'lazy-builtins',
  setup(builder) {
    builder.onResolve({ filter: LAZY_BUILTINS }, (args) => {
      if (args.namespace === 'lazy-builtin') return { path: args.path, external: true };
      return args.importer.endsWith(join('node_modules', 'fastify', 'lib', 'server.js')) ? { path: args.path, namespace: 'lazy-builtin' } : undefined;
    });
    builder.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, (args) => ({
      contents: `let loaded; module.exports = new Proxy({}, { get(_, key) { loaded ??= require(${JSON.stringify(args.path)}); return loaded[key]; } });`,
      loader: 'js',
    }));
  },
};

/**
 * Packages Fastify requires only for what upkeep never asks of it: its default schema compilers
 * (ajv and fast-json-stringify, replaced by `noDefaultCompilers` in src/http/zod.ts) and
 * `inject` (light-my-request, for tests, which run the sources). Bundled, they were never run but
 * their text, about 420 kB, was read and kept in the heap at every start. Each is a module that
 * says so if it is ever called.
 */
const NEVER_CALLED = /^(@fastify\/ajv-compiler|@fastify\/fast-json-stringify-compiler|light-my-request)$/;
const neverCalled: Plugin = {
  name: 'never-called',
  setup(builder) {
    builder.onResolve({ filter: NEVER_CALLED }, (args) =>
      // Fastify's own files only (not fastify-plugin's, not @fastify/*).
      args.importer.includes(join('node_modules', 'fastify') + sep) ? { path: args.path, namespace: 'never-called' } : undefined);
    builder.onLoad({ filter: /.*/, namespace: 'never-called' }, (args) => ({
      contents: `module.exports = () => { throw new Error(${JSON.stringify(`${args.path} is not in upkeep's build (scripts/build.ts)`)}); };`,
      loader: 'js',
    }));
  },
};

// Built beside dist/ and swapped in at the end: removing dist/ first left a package without its
// entry point for the seconds esbuild took, and an `npm pack` (or a test's) that ran meanwhile in
// the same checkout shipped no dist/cli.js (ERR_MODULE_NOT_FOUND at the installed `upkeep`).
const DIST = join(ROOT, 'dist');
const building = `${DIST}.build-${process.pid}`;
await rm(building, { recursive: true, force: true });
await build({
  entryPoints: { cli: join(ROOT, 'src/cli.ts'), 'executor-worker': join(ROOT, 'src/engine/executor-worker.ts') },
  outdir: building,
  bundle: true,
  // One file, not chunks shared through imports: node resolved each of the 127 imports among 31
  // chunks with path functions that became hot enough for V8's optimizing compiler while `serve`
  // started, and one optimized function pages in about 4 MB of the compiler. Modules the CLI imports
  // with import() stay lazy: esbuild runs their top level only when they are first imported. What
  // they import statically from outside the bundle (node's modules, pg) is imported when the file
  // loads, so src/ imports the heavy ones through src/lazy.ts (docs/performance.md, "One file, and
  // schemas built on first use").
  splitting: false,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: EXTERNAL,
  plugins: [zodEnglishOnly, lazyBuiltins, neverCalled],
  // Names are kept, so a logged stack still says which function; whitespace and syntax are
  // minified, since the loaded files' text stays in the heap.
  minifyWhitespace: true,
  minifySyntax: true,
  // The CommonJS dependencies inside (fastify's, pino's) call require() for node's own modules.
  banner: { js: "import { createRequire as __upkeepCreateRequire } from 'node:module'; const require = __upkeepCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});

const code = (err: unknown): unknown => (err instanceof Error && 'code' in err ? err.code : undefined);
// Two renames, since rename(2) replaces no directory that has files. A build beside this one in the
// same checkout may put its dist/ back between them (ENOTEMPTY): then this one moves that aside too.
for (let attempt = 0; ; attempt += 1) {
  const previous = `${DIST}.old-${process.pid}-${attempt}`;
  await rename(DIST, previous).catch((err: unknown) => {
    if (code(err) !== 'ENOENT') throw err;
  });
  try {
    await rename(building, DIST);
    await rm(previous, { recursive: true, force: true });
    break;
  } catch (err) {
    await rm(previous, { recursive: true, force: true });
    if ((code(err) !== 'ENOTEMPTY' && code(err) !== 'EEXIST') || attempt >= 10) throw err;
  }
}
