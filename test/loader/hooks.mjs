// Module hooks for running the TypeScript sources directly (see register.mjs).
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { transformSync } from '@swc/core';

const TS = /\.ts$/;

// Sources import each other as `./name.js` (NodeNext): from a .ts file, such a relative import
// means `./name.ts` when that exists.
export async function resolve(specifier, context, next) {
  if (context.parentURL && TS.test(context.parentURL) && /^\.{1,2}\/.*\.js$/.test(specifier)) {
    try {
      return await next(specifier.replace(/js$/, 'ts'), context);
    } catch (err) {
      if (err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
    }
  }
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (!url.startsWith('file:') || !TS.test(url)) return next(url, context);
  const filename = fileURLToPath(url);
  const { code } = transformSync(await readFile(filename, 'utf8'), {
    filename,
    sourceMaps: 'inline',
    // What tsc does for this tsconfig (target ES2022: class fields are defined, not assigned).
    jsc: { parser: { syntax: 'typescript' }, target: 'es2022', keepClassNames: true, transform: { useDefineForClassFields: true } },
    module: { type: 'es6' },
  });
  return { format: 'module', source: code, shortCircuit: true };
}
