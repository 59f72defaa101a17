import { buildApp, type App } from '../../src/server.js';
import { parseConfig } from '../../src/config/load.js';
import { bufferLogger } from '../fixtures/log.js';

/** An app built from YAML text, logging at info into memory; closed by the caller's teardown. */
export async function appFromYaml(yaml: string, env: Record<string, string> = {}): Promise<App> {
  const parsed = parseConfig(yaml, env);
  if (!parsed.ok) throw new Error(parsed.errors.map((e) => `${e.path}: ${e.message}`).join('\n'));
  return buildApp({ config: parsed.config, log: bufferLogger().log });
}

/** The value of one exact series in exposition text, or undefined. */
export function sample(text: string, series: string): number | undefined {
  const found = text.split('\n').find((line) => line.startsWith(`${series} `));
  return found === undefined ? undefined : Number(found.slice(series.length + 1));
}
