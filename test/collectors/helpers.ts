import { Writable } from 'node:stream';
import { parseConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { buildApp, type App } from '../../src/server.js';

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface TestApp extends App {
  /** Log records the app wrote, parsed. */
  readonly logs: Record<string, unknown>[];
  /** GET /metrics through inject: the status and the parsed samples. */
  scrape(): Promise<{ status: number; text: string; samples: Sample[] }>;
}

/** An app built from YAML, closed by the owning test's teardown; its logs are kept for assertions. */
export async function testApp(owner: { teardown(fn: () => unknown): void }, yaml: string): Promise<TestApp> {
  const parsed = parseConfig(yaml, {});
  if (!parsed.ok) throw new Error(parsed.errors.map((e) => `${e.path}: ${e.message}`).join('\n'));
  const logs: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const log = createLogger({ level: 'info', destination });
  const app = await buildApp({ config: parsed.config, log });
  owner.teardown(() => app.fastify.close());
  return {
    ...app,
    logs,
    async scrape() {
      const response = await app.fastify.inject({ method: 'GET', url: '/metrics' });
      return { status: response.statusCode, text: response.body, samples: parseSamples(response.body) };
    },
  };
}

const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses exposition text into samples (comments skipped). */
export function parseSamples(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const brace = line.indexOf('{');
    const space = line.lastIndexOf(' ');
    const name = brace === -1 ? line.slice(0, space) : line.slice(0, brace);
    const labels: Record<string, string> = {};
    if (brace !== -1) {
      for (const match of line.slice(brace, line.lastIndexOf('}') + 1).matchAll(LABEL)) labels[match[1]!] = match[2]!.replace(/\\(.)/g, '$1');
    }
    samples.push({ name, labels, value: Number(line.slice(space + 1)) });
  }
  return samples;
}

/** The samples of one family, keyed by the given labels joined with "/". */
export function byLabels(samples: readonly Sample[], name: string, keys: readonly string[]): Map<string, number> {
  const result = new Map<string, number>();
  for (const sample of samples) {
    if (sample.name === name) result.set(keys.map((key) => sample.labels[key] ?? '').join('/'), sample.value);
  }
  return result;
}

/** The value of the one sample of a family whose labels include the given ones. */
export function valueOf(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value))?.value;
}
