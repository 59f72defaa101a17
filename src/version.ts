import { readFileSync } from 'node:fs';

// Read without zod: `upkeep --version` should not load a validation library to print one string.
const packageJson: unknown = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const version: unknown = packageJson !== null && typeof packageJson === 'object' ? Reflect.get(packageJson, 'version') : undefined;
if (typeof version !== 'string') throw new Error('package.json has no version');

export const VERSION: string = version;
