import { open, unlink } from 'node:fs/promises';
import { runRecordSchema } from '../journal.js';
import type { RunRecord } from '../journal.js';
import { scanLines } from './segment-scan.js';

const CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * Reads a journal from before segments (`journal/runs.jsonl`, one file that grew for ever) a
 * chunk of lines at a time: each chunk's records are yielded, its lines handed to `append` (the
 * segments), and once all are filed the old file is removed. Memory holds one chunk, never the file.
 */
export async function* readLegacyJournal(file: string, append: (lines: string) => Promise<void>, onSkipped: (lines: number) => void): AsyncGenerator<RunRecord> {
  const handle = await open(file, 'r');
  let skipped = 0;
  try {
    const { size } = await handle.stat();
    for (let offset = 0; offset < size;) {
      const lines: string[] = [];
      const records: RunRecord[] = [];
      const end = await scanLines(handle, offset, (line) => {
        const text = line.toString('utf8');
        if (text.trim() === '') return;
        const record = parseLegacy(text);
        if (!record) skipped += 1;
        else {
          lines.push(text);
          records.push(record);
        }
      }, { maxBytes: CHUNK_BYTES });
      if (end === offset) {
        skipped += 1; // a torn last line
        break;
      }
      offset = end;
      if (lines.length > 0) await append(lines.join('\n'));
      yield* records;
    }
  } finally {
    await handle.close();
  }
  if (skipped > 0) onSkipped(skipped);
  await unlink(file);
}

function parseLegacy(text: string): RunRecord | undefined {
  try {
    const parsed = runRecordSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
