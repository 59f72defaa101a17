import type { AnyAction } from './types.js';

/** Every remediation upkeep knows. Adding one is one file in src/remediation and one line here. */
export const ACTIONS: readonly AnyAction[] = [];
