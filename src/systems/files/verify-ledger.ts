import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { makeDirectory } from './make-directory.js';

// backup.verify writes here and the backups collector reads it, so the verify age survives restarts.
const entrySchema = z.object({ timestamp: z.number(), file: z.string() });
export type VerifyEntry = z.infer<typeof entrySchema>;

function entryPath(stateDir: string, backup: string): string {
  return join(stateDir, 'verify', `${backup}.json`);
}

export async function recordVerify(stateDir: string, backup: string, entry: VerifyEntry): Promise<void> {
  const path = entryPath(stateDir, backup);
  await makeDirectory(join(stateDir, 'verify'));
  await writeFile(`${path}.tmp`, JSON.stringify(entry));
  await rename(`${path}.tmp`, path);
}

export async function readVerify(stateDir: string, backup: string): Promise<VerifyEntry | null> {
  let text: string;
  try {
    text = await readFile(entryPath(stateDir, backup), 'utf8');
  } catch {
    return null;
  }
  const parsed = entrySchema.safeParse(JSON.parse(text));
  return parsed.success ? parsed.data : null;
}
