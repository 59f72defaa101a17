import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';

const run = promisify(execFile);
const lazy = fileURLToPath(new URL('../src/lazy.ts', import.meta.url));

// A fresh process: the test runner's own may have loaded pg or undici already.
t.test('loading pg loads no undici and leaves no navigator behind', async (t) => {
  const script = `
    const loaded = () => process.moduleLoadList.some((name) => name.includes('undici'));
    const before = loaded();
    const { postgresDriver } = await import(${JSON.stringify(lazy)});
    const pg = postgresDriver();
    console.log(JSON.stringify({ before, after: loaded(), navigator: 'navigator' in globalThis, same: postgresDriver() === pg, pool: typeof pg.Pool }));`;
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env: { ...process.env, NODE_OPTIONS: '' } });
  const seen: unknown = JSON.parse(stdout);
  const nodeHasNavigator = Number(process.versions.node.split('.')[0]) >= 21;
  t.same(seen, { before: false, after: false, navigator: nodeHasNavigator, same: true, pool: 'function' });
});
