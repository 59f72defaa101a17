// tap runs each test file as `node --import <this> file.ts` (see .taprc): TypeScript is compiled
// by swc in module hooks, with inline source maps for coverage and stack traces. tap's own
// TypeScript plugin loads ts-node, which loads the TypeScript compiler into every test process
// before anything runs: 0.65-1 s of CPU a file, ~150 files a suite. Types are checked once by
// `tsc --noEmit`, which `npm test` runs first.
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url);
