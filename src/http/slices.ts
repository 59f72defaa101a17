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
