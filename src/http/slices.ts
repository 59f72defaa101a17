import type { ServerResponse } from 'node:http';

/** The client went away before it had every slice: its doing, not a failure of upkeep's. */
export class ClientGone extends Error {
  constructor(cause?: Error) {
    super(cause ? `the client went away: ${cause.message}` : 'the client closed the connection');
    this.name = 'ClientGone';
  }
}

/**
 * Writes slices to a response, each one taken by the socket (its write callback called) before
 * the next is asked for: the renderer writes the next slice into the buffer of one already sent
 * (src/collectors/framework/text.ts). Rejects with ClientGone when the client goes away mid-way,
 * and with the renderer's error when rendering fails.
 */
export async function sendSlices(response: ServerResponse, slices: AsyncIterable<Uint8Array>): Promise<void> {
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
