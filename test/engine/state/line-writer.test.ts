import t from 'tap';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSink, LineWriter, SYNC_SPACING_MS, type LineSink } from '../../../src/engine/state/line-writer.js';
import { besidesFsyncs, fsRequestsDuring } from './fs-requests.js';

/** A sink in memory whose writes and syncs each wait until the test lets them finish. */
function heldSink() {
  const file: string[] = [];
  let synced = 0;
  const held: { kind: 'write' | 'sync'; finish: (err?: Error) => void }[] = [];
  const hold = (kind: 'write' | 'sync', done: () => void) => new Promise<void>((resolve, reject) => {
    held.push({ kind, finish: (err) => { if (err) reject(err); else { done(); resolve(); } } });
  });
  const sink: LineSink = {
    write: (batch) => hold('write', () => { file.push(batch); }),
    sync: () => { const upTo = file.length; return hold('sync', () => { synced = upTo; }); },
    close: async () => undefined,
  };
  const next = (kind: 'write' | 'sync') => {
    const index = held.findIndex((entry) => entry.kind === kind);
    if (index < 0) throw new Error(`no ${kind} in flight`);
    const [entry] = held.splice(index, 1);
    return entry as { finish: (err?: Error) => void };
  };
  return { sink, file, synced: () => synced, next, inFlight: () => held.map((entry) => entry.kind) };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

t.test('a write never waits for the fsync in flight; lines written meanwhile share the next fsync', async (t) => {
  const disk = heldSink();
  const writer = new LineWriter(disk.sink, { syncSpacingMs: 0 });
  const states: string[] = [];
  const track = (name: string, line: { written: Promise<void>; durable: Promise<void> }) => {
    void line.written.then(() => states.push(`${name} written`));
    void line.durable.then(() => states.push(`${name} durable`));
  };
  track('a', writer.enqueue('a'));
  track('b', writer.enqueue('b'));
  track('c', writer.enqueue('c\n'));
  await settle();
  t.same(disk.inFlight(), ['write'], 'a is being written; b and c wait for that write');
  disk.next('write').finish();
  await settle();
  t.same(disk.inFlight(), ['sync', 'write'], 'b and c are written while a is being synced');
  disk.next('write').finish();
  await settle();
  t.same(disk.file, ['a\n', 'b\nc\n'], 'one write for the two lines that arrived together, each line ended once');
  t.same(states, ['a written', 'b written', 'c written'], 'b and c are written before a is durable');
  disk.next('sync').finish();
  await settle();
  t.same(states.slice(3), ['a durable'], "a's fsync started before b and c were written: it does not make them durable");
  disk.next('sync').finish();
  await settle();
  t.same(states.slice(4), ['b durable', 'c durable'], 'the next fsync does');
  t.equal(disk.synced(), 2);
  const idle = writer.close();
  await idle;
  t.same(disk.inFlight(), []);
});

t.test('a failed write rejects its lines; a failed fsync rejects only durability; the writer goes on', async (t) => {
  const disk = heldSink();
  const writer = new LineWriter(disk.sink, { syncSpacingMs: 0 });
  const lost = writer.enqueue('lost');
  await settle();
  disk.next('write').finish(new Error('disk full'));
  await t.rejects(lost.written, { message: 'disk full' });
  await t.rejects(lost.durable, { message: 'disk full' });
  const unsynced = writer.enqueue('unsynced');
  await settle();
  disk.next('write').finish();
  await unsynced.written;
  disk.next('sync').finish(new Error('fsync failed'));
  await t.rejects(unsynced.durable, { message: 'fsync failed' });
  const later = writer.enqueue('later');
  await settle();
  disk.next('write').finish();
  await settle();
  disk.next('sync').finish();
  await later.durable;
  t.same(disk.file, ['unsynced\n', 'later\n']);
  await writer.idle();
});

t.test('under load an fsync starts SYNC_SPACING_MS after the one before at the earliest; the lines written meanwhile share it', async (t) => {
  const disk = heldSink();
  let clock = 1_000;
  const slept: number[] = [];
  let wake = () => undefined as void;
  const sleep = (ms: number) => { slept.push(ms); return new Promise<void>((resolve) => { wake = () => { clock += ms; resolve(); }; }); };
  const writer = new LineWriter(disk.sink, { now: () => clock, sleep });
  const a = writer.enqueue('a');
  await settle();
  disk.next('write').finish();
  await settle();
  t.same(disk.inFlight(), ['sync'], 'the first fsync starts at once');
  clock += 5;
  const lines = ['b', 'c', 'd'].map((line) => writer.enqueue(line));
  await settle();
  disk.next('write').finish();
  await settle();
  disk.next('write').finish();
  disk.next('sync').finish();
  await a.durable;
  await settle();
  t.same(disk.inFlight(), [], 'b, c and d are written (b alone, c and d together); their fsync waits');
  t.same(slept, [SYNC_SPACING_MS - 5], 'until SYNC_SPACING_MS after the first fsync started');
  wake();
  await settle();
  t.same(disk.inFlight(), ['sync'], 'then one fsync for the three');
  disk.next('sync').finish();
  await Promise.all(lines.map((line) => line.durable));
  t.equal(disk.synced(), 3, 'the second fsync covers the three writes after the first: two fsyncs for four lines');
  clock += 1_000;
  const lone = writer.enqueue('e');
  await settle();
  disk.next('write').finish();
  await settle();
  t.same(disk.inFlight(), ['sync'], 'a line long after the last fsync is synced at once');
  t.same(slept, [SYNC_SPACING_MS - 5], 'without a wait');
  disk.next('sync').finish();
  await lone.durable;
  await writer.close();
});

t.test('FileSink creates its file (and directory) on the first write and appends', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'upkeep-line-writer-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'nested', 'events.jsonl');
  const writer = new LineWriter(new FileSink(file));
  await Promise.all([writer.enqueue('one').durable, writer.enqueue('two').durable]);
  await writer.close();
  const again = new LineWriter(new FileSink(file));
  await again.enqueue('three').durable;
  await again.close();
  t.equal(await readFile(file, 'utf8'), 'one\ntwo\nthree\n');
});

t.test('FileSink writes a batch in place: the line is in the file when enqueue returns, with no request in the thread pool', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'upkeep-line-writer-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'events.jsonl');
  const writer = new LineWriter(new FileSink(file));
  await writer.enqueue('one').durable;
  const requests = await fsRequestsDuring(async () => {
    const { written } = writer.enqueue('two');
    t.equal(readFileSync(file, 'utf8'), 'one\ntwo\n', 'written before enqueue returned');
    await written;
  });
  t.same(besidesFsyncs(requests), [], `no write handed to the thread pool (requests: ${requests.join(', ') || 'none'})`);
  await writer.close();
});
