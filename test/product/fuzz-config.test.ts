import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { summarize } from '../../src/cli.js';
import { COLLECTORS } from '../../src/collectors/registry.js';
import { ConfigInvalid, parseConfig, readConfigText } from '../../src/config/load.js';
import { checkReferences, type Registries } from '../../src/config/references.js';
import { ACTIONS } from '../../src/actions/registry.js';
import { random } from '../fixtures/random.js';
import { mutate, TEXT_MUTATION_NAMES, type Mutant, type Source } from './config-mutants.js';
import { upkeep } from './installed.js';

/**
 * Mutated example configs through parseConfig + checkReferences in-process (for volume) and a
 * sample of the same mutants through the installed `upkeep check-config`. A fixed seed: a
 * failure names the mutant and its mutations, and the same run reproduces it.
 *
 * The CLI adds to the in-process volume only what is the same for every mutant of a kind: reading
 * the file (its size limit, NUL bytes, UTF-8), the environment, the printing and the exit code.
 * So instead of a random sample, the CLI gets the first mutant of each kind: each example with
 * each verdict, literal secrets with each verdict, and each text mutation (which is where the
 * file checks bite); and its exit code must be the verdict the sources give for the same file.
 */
const SEED = 0x5eedc0f1;
const IN_PROCESS = 600;
const CLI_CONCURRENCY = 2;

const SECRETS: Readonly<Record<string, string>> = {
  UPKEEP_TOKEN: 'fz-token-8c1d0e77a2',
  REFNET_DB_PASSWORD: 'fz-refnet-pw-51b9c',
  AIMS_DB_PASSWORD: 'fz-aims-pw-e02c4d',
  REDIS_PASSWORD: 'fz-redis-pw-77341f',
};
const FILE_SECRET = 'fz-file-token-3a6f90';
const ALL_SECRETS = [...Object.values(SECRETS), FILE_SECRET];
const REGISTRIES: Registries = { remediations: ACTIONS, collectors: COLLECTORS.map((collector) => collector.name) };

// A path first, as every config error prints it: `  targets.postgres[0].url: ...`, `  (root): ...`.
const ERROR_LINE = /^ {2}(\(root\)|\(file\)|[A-Za-z_[].*?): \S/m;
const STACK_LINE = /^\s+at /m;

const dir = await mkdtemp(join(tmpdir(), 'upkeep-fuzz-config-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const secretFile = join(dir, 'token');
await writeFile(secretFile, `${FILE_SECRET}\n`);

// Secrets enter as ${VAR} (the examples' way), as ${file:...}, or literally (mutate() swaps them in).
const literalSecrets = new Map([...Object.entries(SECRETS).map(([name, value]): [string, string] => [`\${${name}}`, value])]);
const references = [...literalSecrets.keys(), '${file:'];
const isSecret = (value: unknown): boolean => {
  const text = JSON.stringify(value) ?? '';
  return references.some((reference) => text.includes(reference)) || ALL_SECRETS.some((secret) => text.includes(secret));
};

async function sources(): Promise<Source[]> {
  const examples = new URL('../../examples/', import.meta.url);
  const found: Source[] = [];
  for (const name of (await readdir(examples)).filter((file) => file.endsWith('.yml')).sort()) {
    const text = await readFile(new URL(name, examples), 'utf8');
    if (!parseConfig(text, SECRETS).ok) continue; // prometheus.yml, alertmanager.yml: not upkeep configs
    found.push({ name, text });
    if (text.includes('${UPKEEP_TOKEN}')) found.push({ name: `${name}-file`, text: text.replaceAll('${UPKEEP_TOKEN}', `\${file:${secretFile}}`) });
  }
  return found;
}

function generate(seed: number, count: number, from: readonly Source[]): Mutant[] {
  const next = random(seed);
  return Array.from({ length: count }, (_, index) => mutate(next, from[index % from.length] ?? { name: 'empty', text: '' }, literalSecrets, isSecret, index));
}

const leaked = (output: string): string[] => ALL_SECRETS.filter((secret) => output.includes(secret));

const from = await sources();

t.test('the shipped examples are the seeds', async (t) => {
  t.same(from.map((source) => source.name), ['ai-micro-service.yml', 'ai-micro-service.yml-file', 'minimal.yml', 'refnet.yml', 'refnet.yml-file']);
});

/** What the sources say about a mutant given as text: the CLI's output, and whether it is valid. */
function checked(mutant: Mutant): { output: string; valid: boolean; errors: number } | { threw: string } {
  try {
    const parsed = parseConfig(mutant.text, SECRETS);
    const errors = parsed.ok ? checkReferences(parsed.config, REGISTRIES) : parsed.errors;
    const valid = parsed.ok && errors.length === 0;
    return { output: valid ? summarize(parsed.config) : new ConfigInvalid('upkeep.yml', errors).message, valid, errors: errors.length };
  } catch (err) {
    return { threw: err instanceof Error ? err.name : typeof err };
  }
}

/** The exit code `upkeep check-config` must give for the file, as the sources decide it (withConfig in src/cli.ts). */
function expectedExit(file: string): 0 | 1 {
  try {
    const parsed = parseConfig(readConfigText(file), SECRETS);
    return parsed.ok && checkReferences(parsed.config, REGISTRIES).length === 0 ? 0 : 1;
  } catch (err) {
    if (err instanceof ConfigInvalid) return 1;
    throw err;
  }
}

const mutants = generate(SEED, IN_PROCESS, from).map((mutant) => ({ mutant, result: checked(mutant) }));

t.test(`parseConfig and checkReferences, ${IN_PROCESS} mutants in-process`, async (t) => {
  const failures: string[] = [];
  let valid = 0;
  for (const { mutant, result } of mutants) {
    const where = `${mutant.name} [${mutant.mutations.join('; ')}]`;
    if ('threw' in result) {
      failures.push(`${where}: threw ${result.threw}`);
      continue;
    }
    if (result.valid) valid += 1;
    if (result.errors > 0 && !ERROR_LINE.test(result.output)) failures.push(`${where}: no error names a path: ${result.output.slice(0, 300)}`);
    if (leaked(result.output).length > 0) failures.push(`${where}: a secret in the output`);
    if (result.output.length > 65_536) failures.push(`${where}: ${result.output.length} characters of output`);
  }
  t.same(failures, [], 'every mutant is accepted or refused with paths, and no secret is printed');
  t.ok(valid > 0 && valid < IN_PROCESS, `some mutants are still valid (${valid}), most are not`);
  t.comment(`fuzzed ${IN_PROCESS} configs in-process (seed ${SEED}): ${valid} valid, ${IN_PROCESS - valid} refused`);
});

/** The kinds a mutant is of: its example and verdict, literal secrets and verdict, its text mutations. */
function kinds(mutant: Mutant, valid: boolean): string[] {
  const verdict = valid ? 'valid' : 'refused';
  const source = mutant.name.replace(/^\d+-/, '').replace(/-literal$/, '');
  return [`${source} ${verdict}`, ...(mutant.name.endsWith('-literal') ? [`literal ${verdict}`] : []),
    ...mutant.mutations.filter((name) => TEXT_MUTATION_NAMES.includes(name)).map((name) => `text ${name}`)];
}

t.test('the installed upkeep check-config, the first mutant of each kind', async (t) => {
  const sample: Mutant[] = [];
  const covered = new Set<string>();
  for (const { mutant, result } of mutants) {
    const own = kinds(mutant, 'valid' in result && result.valid);
    if (own.some((kind) => !covered.has(kind))) {
      sample.push(mutant);
      for (const kind of own) covered.add(kind);
    }
  }
  const wanted = [...from.flatMap((source) => [`${source.name} valid`, `${source.name} refused`]), 'literal valid', 'literal refused', ...TEXT_MUTATION_NAMES.map((name) => `text ${name}`)];
  t.same([...covered].sort(), wanted.sort(), 'every kind has a mutant');

  const failures: string[] = [];
  const exits = { 0: 0, 1: 0 };
  const check = async (mutant: Mutant) => {
    const file = join(dir, `${mutant.name}.yml`);
    await writeFile(file, mutant.text);
    // The heap cap and the kill after 60 s bound every run: a crash or a hang is not exit 0 or 1.
    const result = await upkeep(['check-config', '--config', file], { env: { ...SECRETS, NODE_OPTIONS: '--max-old-space-size=128' }, timeoutMs: 60_000 });
    const where = `${mutant.name} [${mutant.mutations.join('; ')}]`;
    const output = result.stdout + result.stderr;
    if (result.code === 0 || result.code === 1) exits[result.code] += 1;
    else failures.push(`${where}: exit ${String(result.code)}: ${result.stderr.slice(0, 300)}`);
    const expected = expectedExit(file);
    if (result.code !== expected) failures.push(`${where}: exit ${String(result.code)}, the sources say ${expected}`);
    if (result.code === 1 && !(result.stderr.startsWith(`${file}: `) && ERROR_LINE.test(result.stderr))) failures.push(`${where}: no error names a path: ${result.stderr.slice(0, 300)}`);
    if (STACK_LINE.test(output)) failures.push(`${where}: a stack trace`);
    if (leaked(output).length > 0) failures.push(`${where}: a secret in the output`);
  };
  const queue = [...sample];
  await Promise.all(Array.from({ length: CLI_CONCURRENCY }, async () => {
    for (let mutant = queue.shift(); mutant !== undefined; mutant = queue.shift()) await check(mutant);
  }));
  t.same(failures, [], 'exit 0 or 1 as the sources decide, a path for every refusal, no stack trace, no secret');
  t.equal(exits[0] + exits[1], sample.length);
  t.comment(`${sample.length} configs through the installed upkeep check-config: ${exits[0]} valid, ${exits[1]} refused`);
});
