import { setFlagsFromString } from 'node:v8';

const HELD = Symbol.for('upkeep.youngGenerationHeld');

/**
 * bin/upkeep.js holds V8's young generation at its initial size while the modules load (what
 * they allocate survives, and V8 would grow it to its maximum for good). Once the server
 * listens, this gives V8 back its default growth factor, 2, so a large scrape can still grow
 * it. Returns whether it was held.
 */
export function releaseYoungGeneration(): boolean {
  if (Reflect.get(globalThis, HELD) !== true) return false;
  Reflect.deleteProperty(globalThis, HELD);
  setFlagsFromString('--semi-space-growth-factor=2');
  return true;
}
