import { open } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { nodeCrypto } from '../../lazy.js';
import { gunzipTail, piped, type GunzipEnding } from '../process/child.js';

const CHUNK_BYTES = 1 << 20;
// How long a follower waits for the writer when it has caught up with it.
const POLL_MS = 50;

/** What a followed gzip file was: its bytes' digest, and how its decompressed content ends. */
export interface FollowedGzip {
  readonly bytes: number;
  readonly sha256: string;
  /** The decompressed content's last kilobyte (latin1), or gzip's reason it does not decompress in full. */
  readonly ending: GunzipEnding;
}

/** gzip -dc | tail -c 1024 (gunzipTail), fed one chunk at a time. */
async function gunzipFed(signal: AbortSignal): Promise<{ write: (chunk: Buffer) => Promise<void>; end: () => Promise<GunzipEnding>; destroy: () => void }> {
  const { unzip, ending } = await gunzipTail(null, signal);
  const input = piped(unzip.stdin, 'gzip stdin');
  // gzip stops reading at the first corrupt byte and exits: writes then fail (EPIPE), and its
  // exit status, not the write's error, says what is wrong.
  input.on('error', () => undefined);
  let running = true;
  // An abort kills gzip, and `ending` rejects: followGzip throws the abort itself.
  const stopped = ending.then(() => undefined, () => undefined).finally(() => { running = false; });
  return {
    // Resolves once the chunk is written, so the caller may reuse it; at once when gzip has exited.
    write: async (chunk) => {
      if (!running) return;
      await Promise.race([new Promise((resolve) => input.write(chunk, resolve)), stopped]);
    },
    end: async () => {
      input.end();
      return ending;
    },
    destroy: () => {
      input.destroy();
      unzip.kill('SIGKILL');
    },
  };
}

/**
 * A file's bytes in order, through one buffer (a chunk is valid until the next is asked for). Given
 * `writerDone`, a read that reaches the end waits for the writer still appending, until it settles.
 */
function chunksOf(path: string, signal: AbortSignal, writerDone?: Promise<unknown>): AsyncGenerator<Buffer> {
  // Watched from the call, not from the first read: a writer that fails meanwhile is no unhandled rejection.
  let done = writerDone === undefined;
  void writerDone?.finally(() => { done = true; }).catch(() => undefined);
  return read(path, signal, () => done);
}

async function* read(path: string, signal: AbortSignal, writerDone: () => boolean): AsyncGenerator<Buffer> {
  const handle = await open(path, 'r');
  const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  let position = 0;
  try {
    for (;;) {
      signal.throwIfAborted();
      // Read `done` before reading: a read that finds nothing after the writer ended is the end.
      const writerEnded = writerDone();
      const { bytesRead } = await handle.read(buffer, 0, CHUNK_BYTES, position);
      if (bytesRead === 0) {
        if (writerEnded) return;
        await sleep(POLL_MS, undefined, { signal });
        continue;
      }
      position += bytesRead;
      yield buffer.subarray(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}

/**
 * Reads a gzip file while another process still writes it, until `writerDone` settles and the end
 * is read: hashes it, and feeds it to gzip -dc (CRC and length checked). The backup is checked on
 * the second CPU while pg_dump writes it, instead of in a second pass after it; a later check that
 * the file on disk has this digest (`sha256File`) proves the same of the file. upkeep holds one
 * chunk, whatever the file's size: zlib in this process made a Buffer of every 16 KB decompressed,
 * and V8 collected them late (+40 MB RSS following a 142 MB dump).
 */
export async function followGzip(path: string, writerDone: Promise<unknown>, signal: AbortSignal): Promise<FollowedGzip> {
  const chunks = chunksOf(path, signal, writerDone);
  const hash = nodeCrypto().createHash('sha256');
  const gunzip = await gunzipFed(signal);
  let bytes = 0;
  try {
    for await (const chunk of chunks) {
      bytes += chunk.length;
      hash.update(chunk);
      await gunzip.write(chunk);
    }
  } catch (err) {
    gunzip.destroy();
    throw err;
  }
  const ending = await gunzip.end();
  return { bytes, sha256: hash.digest('hex'), ending };
}

/**
 * The SHA-256 of a file, read through one buffer: a read stream's new Buffer per chunk is collected
 * late, so hashing a 50 MB dump raised `upkeep run`'s peak RSS by about 25 MB.
 */
export async function sha256File(path: string, signal: AbortSignal): Promise<string> {
  const hash = nodeCrypto().createHash('sha256');
  for await (const chunk of chunksOf(path, signal)) hash.update(chunk);
  return hash.digest('hex');
}
