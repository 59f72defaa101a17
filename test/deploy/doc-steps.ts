import { readFile } from 'node:fs/promises';

/**
 * docs/deploy.md's commands, as a test runs them: the fenced blocks whose info string is
 * `sh test:NAME`, in order. A test may change exact strings (a port, a host); each change must
 * match somewhere, so the doc cannot drift away from what the test runs.
 */
export const DOC = new URL('../../docs/deploy.md', import.meta.url);

export async function docBlocks(name: string): Promise<string[]> {
  const text = await readFile(DOC, 'utf8');
  return [...text.matchAll(/^```sh test:([a-z]+)\n([\s\S]*?)^```$/gm)].filter((match) => match[1] === name).map((match) => match[2] ?? '');
}

export class Substitutions {
  private readonly unused: Set<string>;

  constructor(private readonly pairs: ReadonlyArray<readonly [string, string]>) {
    this.unused = new Set(pairs.map(([from]) => from));
  }

  apply(block: string): string {
    let out = block;
    for (const [from, to] of this.pairs) {
      if (!out.includes(from)) continue;
      out = out.replaceAll(from, to);
      this.unused.delete(from);
    }
    return out;
  }

  /** The strings that never matched: the doc no longer says them. */
  missing(): string[] {
    return [...this.unused];
  }
}
