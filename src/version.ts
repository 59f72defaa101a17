import { readFileSync } from 'node:fs';

/**
 * The package's root directory. This module is one level below it both as a source (src/) and
 * in the build (dist/, where every module lands flat: scripts/build.ts), so files shipped beside
 * the code (package.json, alerts/) are found from here rather than from modules deeper in src/.
 */
export const PACKAGE_ROOT = new URL('../', import.meta.url);

// Read without zod: `upkeep --version` should not load a validation library to print one string.
const packageJson: unknown = JSON.parse(readFileSync(new URL('package.json', PACKAGE_ROOT), 'utf8'));
const version: unknown = packageJson !== null && typeof packageJson === 'object' ? Reflect.get(packageJson, 'version') : undefined;
if (typeof version !== 'string') throw new Error('package.json has no version');

export const VERSION: string = version;
