import { createHash, randomBytes } from 'node:crypto';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import t from 'tap';
import { followGzip, sha256File } from '../../../src/systems/files/gzip-follow.js';

const dir = await mkdtemp(join(tmpdir(), 'upkeep-gzip-follow-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const signal = new AbortController().signal;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

// Incompressible content, so the gzip file spans several of the follower's 1 MB reads.
const content = Buffer.concat([randomBytes(3 * 1024 * 1024), Buffer.from('\n-- the end\n')]);
const gzipped = gzipSync(content);

t.test('follows a file while it is written in pieces, to its end once the writer is done', async (t) => {
  const path = join(dir, 'growing.gz');
  await writeFile(path, '');
  let finish = (): void => undefined;
  const writerDone = new Promise<void>((resolve) => { finish = resolve; });
  const followed = followGzip(path, writerDone, signal);
  const pieces = [0, 100, 1.5 * 1024 * 1024, gzipped.length].map(Math.floor);
  for (let piece = 1; piece < pieces.length; piece += 1) {
    // The follower catches up and waits between pieces.
    await sleep(120);
    await appendFile(path, gzipped.subarray(pieces[piece - 1], pieces[piece]));
  }
  finish();
  t.same(await followed, { bytes: gzipped.length, sha256: sha256(gzipped), ending: { ok: true, text: content.subarray(-1024).toString('latin1') } });
  t.equal(await sha256File(path, signal), sha256(gzipped), 'the digest of the file on disk is the followed one');
});

t.test('a truncated or corrupt file is reported, and hashed whole all the same', async (t) => {
  const truncated = join(dir, 'truncated.gz');
  await writeFile(truncated, gzipped.subarray(0, 1000));
  t.same(await followGzip(truncated, Promise.resolve(), signal), { bytes: 1000, sha256: sha256(gzipped.subarray(0, 1000)), ending: { ok: false, error: 'unexpected end of file' } });
  const corrupt = join(dir, 'corrupt.gz');
  const bytes = Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]), Buffer.alloc(2 * 1024 * 1024, 0xff)]);
  await writeFile(corrupt, bytes);
  const followed = await followGzip(corrupt, Promise.resolve(), signal);
  t.same({ bytes: followed.bytes, sha256: followed.sha256, ok: followed.ending.ok }, { bytes: bytes.length, sha256: sha256(bytes), ok: false });
  t.same(followed.ending, { ok: false, error: 'invalid compressed data--format violated' });
});

t.test('a writer that fails still ends the follow; an abort stops it', async (t) => {
  const path = join(dir, 'failed.gz');
  await writeFile(path, gzipped.subarray(0, 5000));
  const failed = await followGzip(path, Promise.reject(new Error('pg_dump died')), signal);
  t.same(failed.ending, { ok: false, error: 'unexpected end of file' });

  const controller = new AbortController();
  const following = followGzip(path, new Promise(() => undefined), controller.signal);
  await sleep(100);
  controller.abort();
  await t.rejects(following, { name: 'AbortError' });
  await t.rejects(sha256File(path, controller.signal), { name: 'AbortError' });
});
