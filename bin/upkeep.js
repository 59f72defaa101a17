#!/usr/bin/env node
// Runs the compiled build when there is one (an installed package), else the TypeScript
// sources through tsx (a checkout), so `npm run demo` needs no build step.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli.js', import.meta.url);
const sources = new URL('../src/cli.ts', import.meta.url);
let cli;
if (existsSync(sources)) {
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import(sources.href);
} else {
  cli = await import(compiled.href);
}
process.exitCode = await cli.main(process.argv.slice(2));
