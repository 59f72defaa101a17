import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { cycles, importEdges, importProblems, importsOf } from '../../scripts/check-imports.js';
import { tempDir } from '../http/helpers.js';

const run = promisify(execFile);

async function tree(t: { teardown(fn: () => unknown): void }, files: Record<string, string>): Promise<string> {
  const root = await tempDir(t);
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), text);
  }
  return root;
}

t.test('imports: static, re-exports, dynamic import(), and which are type-only', async (t) => {
  const text = [
    "import { a } from './a.js';",
    "import type { B } from './b.js';",
    "import { type C, type D } from './c.js';",
    "import { type E, f } from './e.js';",
    "export { g } from '../g.js';",
    "export type { H } from './h.js';",
    "import './side.js';",
    "const later = await import('./later.js');",
    "type Z = import('./z.js').Z;",
    "import pg from 'pg';",
  ].join('\n');
  t.same(importsOf(text, 'x.ts'), [
    { specifier: './a.js', typeOnly: false },
    { specifier: './b.js', typeOnly: true },
    { specifier: './c.js', typeOnly: true },
    { specifier: './e.js', typeOnly: false },
    { specifier: '../g.js', typeOnly: false },
    { specifier: './h.js', typeOnly: true },
    { specifier: './side.js', typeOnly: false },
    { specifier: './later.js', typeOnly: false },
    { specifier: './z.js', typeOnly: true },
  ]);
});

t.test('cycles: one closed path per strongly connected component', async (t) => {
  t.same(cycles([['a', 'b'], ['b', 'c'], ['c', 'a'], ['c', 'd']]), [['a', 'b', 'c', 'a']]);
  t.same(cycles([['a', 'a']]), [['a', 'a']]);
  t.same(cycles([['a', 'b'], ['b', 'c']]), []);
});

t.test('a tiny tree with a file cycle, a folder cycle and a collector importing an action fails', async (t) => {
  const root = await tree(t, {
    'src/engine/one.ts': "import { two } from './two.js';\nexport const one = () => two;\n",
    'src/engine/two.ts': "import { one } from './one.js';\nimport { helper } from '../triggers/helper.js';\nexport const two = () => [one, helper];\n",
    'src/triggers/helper.ts': "export const helper = 1;\nexport const back = () => import('../engine/one.js');\n",
    'src/collectors/scrape.ts': "import type { Vacuum } from '../actions/vacuum.js';\nexport type Scrape = Vacuum;\n",
    'src/actions/vacuum.ts': 'export type Vacuum = { table: string };\n',
    'src/actions/types-only.ts': "import type { Back } from './types-back.js';\nexport type Front = Back;\n",
    'src/actions/types-back.ts': "import type { Front } from './types-only.js';\nexport type Back = { front?: Front };\n",
  });
  const problems = importProblems(await importEdges(join(root, 'src')));
  t.same(problems, [
    'import cycle between files: engine/one.ts -> engine/two.ts -> engine/one.ts',
    'import cycle between folders under src/: engine -> triggers -> engine',
    'collectors/scrape.ts imports actions/vacuum.ts: src/collectors/ and src/actions/ must not import each other (share code through src/systems/)',
  ], 'the type-only cycle between two action files is no runtime cycle, and is not reported');

  const failed = await run('node', ['--import', 'tsx', 'scripts/check-imports.ts', join(root, 'src')]).then(() => null, (err: { code: number; stderr: string }) => err);
  t.equal(failed?.code, 1, 'the script exits 1');
  t.equal(failed?.stderr, `${problems.join('\n')}\n`);
});

t.test('the repository passes', async (t) => {
  const { stdout } = await run('node', ['--import', 'tsx', 'scripts/check-imports.ts']);
  t.match(stdout, /^check:imports: \d+ imports, no cycles between files or folders, collectors and actions apart\n$/);
});
