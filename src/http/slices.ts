import type { ServerResponse } from 'node:http';

/**
 * Writes slices to a response, each one taken by the socket (its write callback called) before
 * the next is asked for: the renderer writes the next slice into the buffer of one already sent
 * (src/collectors/framework/text.ts). A client that goes away mid-way rejects it.
 */
export async function sendSlices(response: ServerResponse, slices: AsyncIterable<Uint8Array>): Promise<void> {
  for await (const slice of slices) {
    await new Promise<void>((resolve, reject) => {
      const closed = () => reject(new Error('the client closed the connection'));
      response.once('close', closed);
      response.write(slice, (err) => {
        response.off('close', closed);
        if (err) reject(err);
        else resolve();
      });
    });
  }
}
