#!/usr/bin/env node
// Runs the compiled build when there is one (an installed package), else the TypeScript
// sources (a checkout), so `npm run demo` needs no build step. Installed, it is started by
// bin/upkeep, which sizes V8's helper threads first.
import { existsSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';

// Loading the modules keeps nearly everything it allocates, and V8 answers that by growing the
// young generation from 1 MB to 16 MB semi-spaces, which it never gives back: about 10 MB of a
// long-lived server's idle RSS (examples/minimal.yml: 82 -> 72 MB; docs/performance.md, "Idle
// memory"). Growth is held for the process's life: a scrape's rows are streamed and die young,
// so a small young generation also keeps the 10,200-table scrape's peak lower (132 -> 116 MB, the
// same scrape time); what outlives it goes to the old generation. That one V8 lets grow by up to
// 4x what the last mark-compact left before it collects again: over 60 scrapes back to back the
// peak climbed to 122 MB. Held at 1.5x it stayed at 92-97 MB, at the same scrape time
// (docs/performance.md, "The old generation's growth held"). During an alert storm the engine
// lets both grow (src/engine/young-generation.ts). A user who sets either keeps theirs: the
// young generation in NODE_OPTIONS or on node's command line, the old one's growth on the
// command line only (node refuses --heap-growing-percent in NODE_OPTIONS).
const userFlags = `${process.env.NODE_OPTIONS ?? ''} ${process.execArgv.join(' ')}`;
const hold = [
  userFlags.includes('semi-space') ? null : '--semi-space-growth-factor=1',
  userFlags.includes('heap-growing-percent') ? null : '--heap-growing-percent=50',
].filter((flag) => flag !== null).join(' ');
if (hold !== '') {
  setFlagsFromString(hold);
  // V8 resets the semi-space factor whenever it makes an isolate: it is set again once the executor thread runs (src/engine/young-generation.ts).
  globalThis[Symbol.for('upkeep.youngGenerationHold')] = hold;
}

const compiled = new URL('../dist/cli.js', import.meta.url);
const sources = new URL('../src/cli.ts', import.meta.url);
let cli;
if (!existsSync(sources)) {
  cli = await import(compiled.href);
} else {
  // Started by a test: transpile exactly as tap does, so the coverage this process reports lines
  // up with (and merges into) the coverage of the same files in the test process. Else tsx.
  // (test/loader/register.mjs registers its hooks when imported.)
  const loader = process.env.TAP === '1'
    ? { url: new URL('../test/loader/register.mjs', import.meta.url).href, register: false }
    : { url: import.meta.resolve('tsx/esm/api'), register: true };
  const loaded = await import(loader.url);
  if (loader.register) loaded.register();
  // A worker thread does not inherit a loader registered at run time: the executor thread
  // (src/engine/executor-thread.ts) registers this one first.
  globalThis[Symbol.for('upkeep.sourceLoader')] = loader;
  cli = await import(sources.href);
}
process.exitCode = await cli.main(process.argv.slice(2));
