/**
 * How long the alert claim table holds the event loop in its two whole-table steps, at the
 * guards' limit (CLAIM_LIMIT, 50,000 claims): the doubling at 45,875 claims (65,536 to 131,072
 * slots), and the prune to 90 % of the limit that an alert storm causes every 5,000 new claims.
 * Each is timed in a fresh table, five times, on the sources:
 *   npm run bench:claims
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { ClaimTable } from '../src/engine/state/claim-table.js';
import { CLAIM_LIMIT } from '../src/engine/state/guard-file.js';

const DOUBLES_AT = 45_875;
const ROUNDS = 5;
const keys = Array.from({ length: CLAIM_LIMIT + 1 }, () => randomBytes(16).toString('base64url'));
const runIds = keys.map(() => randomUUID());

function fill(table: ClaimTable, from: number, to: number): void {
  for (let n = from; n < to; n += 1) table.add(keys[n] ?? '', runIds[n] ?? '', n);
}

function timed(work: () => void): string {
  const start = performance.now();
  work();
  return (performance.now() - start).toFixed(1);
}

const doublings: string[] = [];
const prunes: string[] = [];
for (let round = 0; round < ROUNDS; round += 1) {
  const table = new ClaimTable();
  fill(table, 0, DOUBLES_AT);
  doublings.push(timed(() => fill(table, DOUBLES_AT, DOUBLES_AT + 1)));
  fill(table, DOUBLES_AT + 1, CLAIM_LIMIT + 1);
  // As GuardFile.claimAlert prunes once the limit is passed: to a tenth below it.
  prunes.push(timed(() => table.prune(0, Math.floor(CLAIM_LIMIT * 0.9))));
}
console.log(`claim table, ${ROUNDS} fresh tables (ms):`);
console.log(`  doubling at ${DOUBLES_AT} claims:        ${doublings.join(' ')}`);
console.log(`  prune ${CLAIM_LIMIT + 1} -> ${Math.floor(CLAIM_LIMIT * 0.9)} claims:   ${prunes.join(' ')}`);
