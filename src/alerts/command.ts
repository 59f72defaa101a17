import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigInvalid } from '../config/load.js';
import { readFailure } from '../config/read.js';
import { loadThresholds } from './load.js';
import { renderRules, RULES_FILE } from './render.js';
import { ruleGroups } from './rules.js';
import { DEFAULT_THRESHOLDS, type Thresholds } from './thresholds.js';
import { makeDirectory } from '../systems/files/make-directory.js';

export interface RulesOptions {
  /** A thresholds file; without one, the shipped defaults. */
  thresholds?: string;
  /** A directory to write upkeep.rules.yml into; without one, the rules go to stdout. */
  out?: string;
}

/** `upkeep rules`: renders the alert rules; 0, or 1 with each error of the thresholds file. */
export async function rulesCommand(options: RulesOptions, io: { out: (line: string) => void; err: (line: string) => void }): Promise<number> {
  let thresholds: Thresholds;
  try {
    thresholds = options.thresholds === undefined ? DEFAULT_THRESHOLDS : loadThresholds(options.thresholds);
  } catch (err) {
    if (!(err instanceof ConfigInvalid)) throw err;
    io.err([`${err.file}: ${err.errors.length} error(s) in the thresholds file; no rules written`, ...err.errors.map((error) => `  ${error.path}: ${error.message}`)].join('\n'));
    return 1;
  }
  const groups = ruleGroups(thresholds);
  const text = renderRules(groups, thresholds);
  if (options.out === undefined) {
    io.out(text.slice(0, -1));
    return 0;
  }
  const file = join(options.out, RULES_FILE);
  try {
    await makeDirectory(options.out);
    // Written aside and renamed, so a Prometheus reloading the directory never reads half a file.
    const partial = `${file}.partial-${process.pid}`;
    await writeFile(partial, text);
    await rename(partial, file);
  } catch (err) {
    io.err(`--out ${options.out}: cannot write ${RULES_FILE} (${readFailure(err)})`);
    return 1;
  }
  io.out(`wrote ${file} (${groups.reduce((sum, group) => sum + group.rules.length, 0)} alerts)`);
  return 0;
}
