import type { Writable } from 'node:stream';

/** The client went away before it had every slice: its doing, not a failure of upkeep's. */
export class ClientGone extends Error {
  constructor(cause?: Error) {
    super(cause ? `the client went away: ${cause.message}` : 'the client closed the connection');
    this.name = 'ClientGone';
  }
}

/**
 * Writes slices to a response (or to the gzip stream in front of it), each one taken (its write
 * callback called: by the socket, or by gzip once it has compressed it) before the next is asked
 * for: the renderer writes the next slice into the buffer of one already sent
 * (src/collectors/framework/text.ts). Rejects with ClientGone when the client goes away mid-way
 * (which closes the gzip stream too), and with the renderer's error when rendering fails.
 */
export async function sendSlices(response: Writable, slices: AsyncIterable<Uint8Array>): Promise<void> {
  for await (const slice of slices) {
    await new Promise<void>((resolve, reject) => {
      const closed = () => reject(new ClientGone());
      response.once('close', closed);
      response.write(slice, (err) => {
        response.off('close', closed);
        if (err) reject(new ClientGone(err));
        else resolve();
      });
    });
  }
}

// Copies in flight at once: one being compressed, the next ones ready for it.
const COPIES = 3;

/**
 * Writes slices to a stream that works on them away from this thread (gzip, on libuv's thread
 * pool), each first copied into one of a few buffers of its own: the renderer writes the next
 * slice while the stream still works on the copy, where sendSlices would wait for it. Copies are
 * reused once the stream has taken them, so at most COPIES slices are held. Rejects as
 * sendSlices does.
 */
export async function sendCopies(stream: Writable, slices: AsyncIterable<Uint8Array>): Promise<void> {
  const spare: Buffer[] = [];
  let inFlight = 0;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const woken = () => {
    wake?.();
    wake = undefined;
  };
  const closed = () => {
    failure ??= new ClientGone();
    woken();
  };
  const until = async (done: () => boolean) => {
    while (!done() && failure === undefined) await new Promise<void>((resolve) => { wake = resolve; });
    if (failure !== undefined) throw failure;
  };
  stream.once('close', closed);
  try {
    for await (const slice of slices) {
      await until(() => inFlight < COPIES);
      const reused = spare.pop();
      const copy = reused !== undefined && reused.length >= slice.length ? reused : Buffer.allocUnsafe(slice.length);
      copy.set(slice);
      inFlight += 1;
      stream.write(copy.subarray(0, slice.length), (err) => {
        inFlight -= 1;
        if (err) failure ??= new ClientGone(err);
        spare.push(copy);
        woken();
      });
    }
    await until(() => inFlight === 0);
  } finally {
    stream.off('close', closed);
  }
}
