// tap's coverage map: which source files a test file is measured against.
//
// A test mirrors its module: test/engine/journal.test.ts covers src/engine/journal.ts. When test
// files are named on the command line (`npx tap test/engine/journal.test.ts`), each is checked
// against its own module only, so a unit test cannot pass on coverage that other code paths
// happen to give it. A test with no module of its name (an integration test such as
// test/http/routes.test.ts) is measured against everything it loads.
//
// A whole-suite run (`npm test`, no files named) measures every test against everything it
// loads, as before the map: the thresholds in .taprc hold for the suite as users exercise it,
// integration tests included, and are never lowered.
import { existsSync } from 'node:fs';

const named = process.argv.slice(2).some((arg) => /\.test\.[cm]?[jt]s$/.test(arg));

/** @param {string} testFile @returns {string[] | null} */
export default function coverageMap(testFile) {
  if (!named) return [];
  const match = /^test\/(.+)\.test\.[cm]?[jt]s$/.exec(testFile.split('\\').join('/'));
  if (!match) return [];
  // test/engine/journal.test.ts -> src/engine/journal.ts; test/scripts/x.test.ts -> scripts/x.ts
  const source = [`src/${match[1]}.ts`, `${match[1]}.ts`].find((candidate) => existsSync(candidate));
  return source ? [source] : [];
}
