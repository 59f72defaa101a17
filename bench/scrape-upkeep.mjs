// Runs upkeep from the compiled build (dist/, made by `npm run build`), the way an installed
// package runs: bin/upkeep.js would pick the TypeScript sources through tsx in a checkout, and
// tsx's loader alone adds about 35 MB of RSS that a deployment does not have.
const cli = await import(new URL('../dist/cli.js', import.meta.url).href);
process.exitCode = await cli.main(process.argv.slice(2));
